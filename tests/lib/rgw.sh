# shellcheck shell=bash
# A private, throwaway Ceph cluster serving S3 through the RADOS Gateway (RGW), for walstore's
# S3 integration tests.  tests/lib/s3.sh sources it and calls rgw_start from s3_start when
# WALSTORE_TEST_S3_SERVER=rgw; tests use the s3_* functions, not these.
#
#   rgw_start [--tls]  one monitor, one OSD (memstore: data in memory), pools of size 1,
#                      no cephx between the daemons, and radosgw (beast) on a free port of
#                      127.0.0.1 (HTTPS with --tls: a fresh self-signed certificate for
#                      127.0.0.1/localhost, whose PEM is $S3_CA_BUNDLE); all of it in
#                      $WS_TMP/rgw.<port> (config, mon store, logs).  Creates a user with a
#                      fresh secret key and the bucket $S3_BUCKET, and exports what s3_start
#                      exports.  The store honours storage class STANDARD_IA and SSE-KMS with
#                      the key id arn:aws:kms:us-east-1:1:key/k1 (RGW's "testing" KMS backend,
#                      a fixed key in the config; SSE allowed over plain HTTP).
#   rgw_stop           SIGKILL to radosgw, the OSD and the monitor (by PID; the cluster is
#                      thrown away, so nothing needs a clean shutdown), waiting until they are
#                      gone.  The EXIT trap also calls it.
# Needs the Debian packages ceph-mon ceph-osd radosgw ceph-common (scripts/install-deps).
# Start-up takes about 3 to 5 s (paxos propose interval 0.1 s instead of 1 s).

RGW_PIDS=()
RGW_STOP_ON_EXIT=0
RGW_KMS_KEY_ID=arn:aws:kms:us-east-1:1:key/k1

# rgw_wait_for DESC SECONDS CMD...: runs CMD every 0.1 s until it succeeds.
rgw_wait_for() {
  local desc=$1 tenths=$(($2 * 10)) i
  shift 2
  for ((i = 0; i < tenths; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  ws_die "RGW: $desc did not happen within $((tenths / 10)) s (logs in $S3_DIR/log)"
}

# rgw_daemon NAME CMD...: starts a Ceph daemon in the foreground of a background job.
rgw_daemon() {
  local name=$1
  shift
  "$@" >"$S3_DIR/log/$name.out" 2>&1 &
  RGW_PIDS+=("$!")
}

rgw_start() {
  local cmd tls=0 mon_port port frontend fsid osd_uuid dir
  for cmd in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph; do
    command -v "$cmd" >/dev/null ||
      ws_die "$cmd not found: run scripts/install-deps (Debian: ceph-mon ceph-osd radosgw ceph-common)"
  done
  [[ ${1:-} == --tls ]] && tls=1
  mon_port=$(ws_free_port)
  port=$(ws_free_port)
  dir=$WS_TMP/rgw.$port
  S3_DIR=$dir
  mkdir -p "$dir/run" "$dir/log" "$dir/mon" "$dir/osd/0" "$dir/crash"
  if ((tls)); then
    s3_make_certificate "$dir"
    frontend="beast ssl_endpoint=127.0.0.1:$port ssl_certificate=$dir/cert.pem ssl_private_key=$dir/key.pem"
  else
    frontend="beast endpoint=127.0.0.1:$port"
  fi
  fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
  # auth none between the daemons needs "ms mon client mode = crc secure", or radosgw loops on
  # "get_initial_auth_request returned -13".  mon data avail: the monitor would stop when the
  # test machine's disk is nearly full; that is not what these tests are about.
  cat >"$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
keyring = /dev/null
run dir = $dir/run
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
crash dir = $dir/crash
log to stderr = false
err to stderr = true
mon data = $dir/mon/\$name
mon data avail warn = 1
mon data avail crit = 0
paxos propose interval = 0.1
mon max pg per osd = 1000
osd data = $dir/osd/\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
[client.rgw]
rgw frontends = $frontend
rgw thread pool size = 64
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = $RGW_KMS_KEY_ID=$(head -c 32 /dev/urandom | base64)
CONF
  local conf=(-c "$dir/ceph.conf")
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" \
    >"$dir/log/monmaptool.out" 2>&1 || ws_die "RGW: monmaptool failed"
  ceph-mon "${conf[@]}" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mkfs-mon.out" 2>&1 ||
    ws_die "RGW: ceph-mon --mkfs failed: $(tail -n 5 "$dir/log/mkfs-mon.out")"
  rgw_daemon mon ceph-mon "${conf[@]}" -f -i a
  if ((!RGW_STOP_ON_EXIT)); then
    ws_on_exit rgw_stop
    RGW_STOP_ON_EXIT=1
  fi
  # The OSD's store is made without the monitor (it is starting meanwhile), then registered.
  ceph-osd "${conf[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" --no-mon-config \
    >"$dir/log/mkfs-osd.out" 2>&1 ||
    ws_die "RGW: ceph-osd --mkfs failed: $(tail -n 5 "$dir/log/mkfs-osd.out")"
  timeout 30 ceph "${conf[@]}" osd new "$osd_uuid" 0 >"$dir/log/osd-new.out" 2>&1 ||
    ws_die "RGW: ceph osd new failed: $(tail -n 5 "$dir/log/osd-new.out")"
  rgw_daemon osd ceph-osd "${conf[@]}" -f -i 0
  # radosgw-admin makes the default zone and its pools (waiting for the OSD); the extra
  # storage class goes into the zone before radosgw reads it.
  S3_SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  timeout 60 radosgw-admin "${conf[@]}" user create --uid walstore --display-name walstore \
    --access-key WALSTORETEST --secret-key "$S3_SECRET" >"$dir/log/user.out" 2>&1 ||
    ws_die "RGW: radosgw-admin user create failed: $(tail -n 5 "$dir/log/user.out")"
  timeout 30 radosgw-admin "${conf[@]}" zonegroup placement add --rgw-zonegroup default \
    --placement-id default-placement --storage-class STANDARD_IA >"$dir/log/placement.out" 2>&1 ||
    ws_die "RGW: radosgw-admin zonegroup placement add failed: $(tail -n 5 "$dir/log/placement.out")"
  timeout 30 radosgw-admin "${conf[@]}" zone placement add --rgw-zone default \
    --placement-id default-placement --storage-class STANDARD_IA \
    --data-pool default.rgw.standard-ia.data >>"$dir/log/placement.out" 2>&1 ||
    ws_die "RGW: radosgw-admin zone placement add failed: $(tail -n 5 "$dir/log/placement.out")"
  rgw_daemon radosgw radosgw "${conf[@]}" -f -n client.rgw
  if ((tls)); then
    S3_ENDPOINT=https://127.0.0.1:$port
  else
    S3_ENDPOINT=http://127.0.0.1:$port
  fi
  export AWS_ENDPOINT_URL=$S3_ENDPOINT AWS_ACCESS_KEY_ID=WALSTORETEST
  export AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_REGION=us-east-1 S3_BUCKET S3_DIR S3_ENDPOINT
  unset AWS_CA_BUNDLE
  s3_wait_port "$port"
  rgw_wait_for "creating bucket $S3_BUCKET" 60 python3 "$WS_LIB_DIR/s3_client.py" make-bucket
  ws_log "Ceph RGW $(radosgw --version | awk '{print $3}') on $S3_ENDPOINT, bucket $S3_BUCKET"
}

rgw_stop() {
  local pid
  ((${#RGW_PIDS[@]} > 0)) || return 0
  for pid in "${RGW_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${RGW_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  RGW_PIDS=()
}
