#include "format/object_record.h"

#include <algorithm>
#include <cstring>

namespace walstore::format_internal {

using namespace object_layout;

std::array<uint8_t, kRecordHeaderSize> RecordHeader::Serialize() const {
  std::array<uint8_t, kRecordHeaderSize> out{};
  uint8_t* p = out.data();
  PutField(p, kRecordType, type);
  PutField(p, kRecordFlags, flags);
  PutField(p, kRecordIndexHigh, index >> kRecordIndexLowBits);  // 0 in version 1
  PutField(p, kRecordIndexLow, index);
  PutField(p, kRecordPlainLength, plain_len);
  PutField(p, kRecordStoredLength, stored_len);
  return out;
}

RecordHeader RecordHeader::Parse(const uint8_t* p) {
  return {static_cast<uint8_t>(GetField(p, kRecordType)),
          static_cast<uint8_t>(GetField(p, kRecordFlags)),
          GetField(p, kRecordIndexHigh) << kRecordIndexLowBits | GetField(p, kRecordIndexLow),
          static_cast<uint32_t>(GetField(p, kRecordPlainLength)),
          static_cast<uint32_t>(GetField(p, kRecordStoredLength))};
}

std::array<uint8_t, AesGcm::kNonceSize> RecordNonce(uint16_t version, uint8_t type,
                                                    uint64_t index) {
  std::array<uint8_t, AesGcm::kNonceSize> nonce{};
  const Field index_field = version >= 2 ? kNonceIndexV2 : kNonceIndexV1;
  PutField(nonce.data(), index_field, index);
  nonce[index_field.end()] = type;
  return nonce;
}

RecordAad::RecordAad(const std::array<uint8_t, kObjectHeaderSize>& header, uint16_t version,
                     std::string_view identity)
    : aad_(header.begin(), header.begin() + kHeaderDescriptionSize) {
  aad_.resize(kHeaderDescriptionSize + kRecordHeaderSize);
  if (version >= 2) aad_.insert(aad_.end(), identity.begin(), identity.end());
}

Bytes RecordAad::For(const RecordHeader& record) {
  const auto rh = record.Serialize();
  std::memcpy(aad_.data() + kHeaderDescriptionSize, rh.data(), rh.size());
  return Bytes(aad_.data(), aad_.size());
}

void StartStoredHash(Sha256& stored_hash, const std::array<uint8_t, kObjectHeaderSize>& header,
                     uint16_t version, std::string_view identity) {
  if (version >= 2) {
    uint8_t length[kStoredHashIdentityLengthSize];
    PutLe(length, identity.size(), kStoredHashIdentityLengthSize);
    stored_hash.Update(Bytes(length, sizeof length));
    stored_hash.Update(AsBytes(identity));
  }
  stored_hash.Update(Bytes(header.data(), kHeaderDescriptionSize));
}

size_t TagSize(Cipher cipher) { return cipher == Cipher::kAes256Gcm ? AesGcm::kTagSize : 0; }

size_t MaxRecordPayload(size_t max_compressed_chunk, uint32_t chunk_size) {
  return std::max<size_t>({max_compressed_chunk, chunk_size, kEndPayloadSizeMax});
}

}  // namespace walstore::format_internal
