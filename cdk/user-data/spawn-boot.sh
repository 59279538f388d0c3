#!/bin/bash
# spawn instance bootstrap, rendered by cdk/lib/user-data.ts: its placeholders are filled in at synth.
#
#   spawn-boot.sh           as EC2 user-data: install what the image lacks, read this instance's
#                           sweep from its tags, start the agent under systemd
#   spawn-boot.sh install   on the AMI build (Image Builder): install Node, the agent, the
#                           executor and the unit, start nothing
#
# It holds no credentials: the instance role provides them. It works on the spawn AMI (everything
# already installed for this version) and on a stock Deep Learning AMI (it installs Node 22 and
# fetches the agent). If it fails on an instance, it uploads its log and powers the instance off
# (the launch template terminates on shutdown), so a broken boot never runs up a bill.
set -Eeuo pipefail

readonly STACK_NAME='@{stackName}'
readonly SPAWN_VERSION='@{version}'
readonly HOME_REGION='@{homeRegion}'
readonly ARTIFACTS_BUCKET='@{artifactsBucket}'
readonly RESULTS_BUCKET='@{resultsBucket}'
readonly TABLE_PREFIX='@{tablePrefix}'
readonly EVENT_BUS='@{eventBus}'
readonly AGENT_KEY='@{agentKey}'
readonly EXECUTOR_KEY_X86_64='@{executorKeyX86_64}'
readonly EXECUTOR_KEY_AARCH64='@{executorKeyAarch64}'
readonly EXECUTOR_SOURCE_KEY='@{executorSourceKey}'
# Where the agent's systemd unit (agent/systemd/spawn-agent.service) runs Node and the agent from.
readonly NODE_BIN='@{nodeBin}'
readonly AGENT_JS='@{agentPath}'

readonly ROOT=/opt/spawn
readonly VERSION_DIR="$ROOT/$SPAWN_VERSION"
readonly LOG=/var/log/spawn-boot.log
readonly IMDS=http://169.254.169.254
MODE=${1:-boot}
SWEEP=""
INSTANCE=""

exec > >(tee -a "$LOG") 2>&1
log() { echo "spawn-boot: $(date -u +%FT%TZ) $*"; }

on_error() {
  # A failing command substitution (a retried metadata read) reports to its caller instead.
  [ "$BASHPID" = "$$" ] || exit "$2"
  log "failed at line $1 (exit $2)"
  [ "$MODE" = boot ] || exit "$2"
  if [ -n "$SWEEP" ] && [ -n "$INSTANCE" ]; then
    aws --region "$HOME_REGION" s3 cp "$LOG" "s3://$RESULTS_BUCKET/logs/$SWEEP/boot/$INSTANCE.log" || true
  fi
  log "powering off: this instance cannot run the agent"
  shutdown -h +1
  exit "$2"
}
trap 'on_error $LINENO $?' ERR

s3_get() { aws --region "$HOME_REGION" s3 cp --only-show-errors "s3://$ARTIFACTS_BUCKET/$1" "$2"; }
s3_exists() { aws --region "$HOME_REGION" s3api head-object --bucket "$ARTIFACTS_BUCKET" --key "$1" >/dev/null 2>&1; }

# IMDSv2 only: the launch template disables IMDSv1.
imds_token() {
  curl -fsS -X PUT "$IMDS/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" \
    --max-time 2 --retry 10 --retry-connrefused
}
imds_get() { curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" --max-time 2 "$IMDS/latest/$1"; }

node_ok() {
  local v
  v=$("$1" --version 2>/dev/null) || return 1
  [[ $v =~ ^v([0-9]+)\. ]] && ((BASH_REMATCH[1] >= 20))
}

# Node >= 20 at $NODE_BIN: the image's own when it is recent enough, else the newest Node 22
# from nodejs.org, checked against the release's SHASUMS256.txt, linked there.
ensure_node() {
  if node_ok "$NODE_BIN"; then return; fi
  local arch
  case $(uname -m) in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) log "unsupported architecture $(uname -m)"; return 1 ;;
  esac
  local base=https://nodejs.org/dist/latest-v22.x line file tmp
  line=$(curl -fsSL --retry 5 "$base/SHASUMS256.txt" | grep -E "  node-v22\.[0-9]+\.[0-9]+-linux-$arch\.tar\.xz$")
  file=${line##* }
  tmp=$(mktemp -d)
  curl -fsSL --retry 5 -o "$tmp/$file" "$base/$file"
  (cd "$tmp" && echo "$line" | sha256sum -c --quiet -)
  rm -rf "$ROOT/node" && mkdir -p "$ROOT/node"
  tar -xJf "$tmp/$file" -C "$ROOT/node" --strip-components=1
  rm -rf "$tmp"
  ln -sfn "$ROOT/node/bin/node" "$NODE_BIN"
  log "installed $("$NODE_BIN" --version) as $NODE_BIN"
}

# The agent of this version goes to $VERSION_DIR; the directory the unit runs it from links there.
install_agent() {
  local file
  file="$VERSION_DIR/$(basename "$AGENT_JS")"
  mkdir -p "$VERSION_DIR"
  if [ ! -s "$file" ]; then
    s3_get "$AGENT_KEY" "$file.tmp"
    mv "$file.tmp" "$file"
  fi
  ln -sfn "$VERSION_DIR" "$(dirname "$AGENT_JS")"
}

# The executor is optional: a prebuilt binary for this architecture, else a build from source
# where nvcc exists (the spawn AMI), else none (GPU probing and budgets are then off, and the
# agent says so).
install_executor() {
  [ -x "$VERSION_DIR/spawn-executor" ] && return
  local key nvcc
  case $(uname -m) in
    x86_64) key=$EXECUTOR_KEY_X86_64 ;;
    *) key=$EXECUTOR_KEY_AARCH64 ;;
  esac
  if s3_exists "$key"; then
    s3_get "$key" "$VERSION_DIR/spawn-executor.tmp"
    chmod 755 "$VERSION_DIR/spawn-executor.tmp"
    mv "$VERSION_DIR/spawn-executor.tmp" "$VERSION_DIR/spawn-executor"
    return
  fi
  nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
  if [ -n "$nvcc" ] && s3_exists "$EXECUTOR_SOURCE_KEY"; then
    local src
    src=$(mktemp -d)
    s3_get "$EXECUTOR_SOURCE_KEY" "$src/executor-src.tar.gz"
    tar -xzf "$src/executor-src.tar.gz" -C "$src"
    PATH="$(dirname "$nvcc"):$PATH" make -C "$src/agent/executor"
    install -m 755 "$src/agent/executor/build/spawn-executor" "$VERSION_DIR/spawn-executor"
    rm -rf "$src"
    return
  fi
  log "no spawn-executor for $(uname -m) in spawn $SPAWN_VERSION: GPU probing and budgets are off"
}

install_unit() {
  cat >/etc/systemd/system/spawn-agent.service <<'UNIT'
@{agentUnit}
UNIT
  systemctl daemon-reload
}

# Tag values land in an environment file: accept ids only.
checked_id() {
  [[ $2 =~ ^[A-Za-z0-9._:-]{1,128}$ ]] || { log "instance tag $1 has an unexpected value"; return 1; }
  printf '%s' "$2"
}

write_environment() {
  local sweep_tag="" tries
  for tries in $(seq 1 30); do
    sweep_tag=$(imds_get meta-data/tags/instance/spawn:sweep) && break
    log "waiting for instance tags in metadata ($tries)"
    sleep 2
  done
  SWEEP=$(checked_id spawn:sweep "$sweep_tag")
  INSTANCE=$(checked_id spawn:instance "$(imds_get meta-data/tags/instance/spawn:instance)")
  local ec2_id executor=""
  ec2_id=$(imds_get meta-data/instance-id)
  [ -x "$VERSION_DIR/spawn-executor" ] && executor="$VERSION_DIR/spawn-executor"
  mkdir -p /etc/spawn /var/lib/spawn
  umask 022
  cat >/etc/spawn/agent.env <<ENV
SPAWN_PROVIDER=aws
SPAWN_STACK_NAME=$STACK_NAME
SPAWN_VERSION=$SPAWN_VERSION
SPAWN_SWEEP_ID=$SWEEP
SPAWN_INSTANCE_ID=$INSTANCE
SPAWN_EC2_INSTANCE_ID=$ec2_id
SPAWN_TABLE_PREFIX=$TABLE_PREFIX
SPAWN_ARTIFACTS_BUCKET=$ARTIFACTS_BUCKET
SPAWN_RESULTS_BUCKET=$RESULTS_BUCKET
SPAWN_EVENT_BUS=$EVENT_BUS
SPAWN_HOME_REGION=$HOME_REGION
AWS_REGION=$HOME_REGION
SPAWN_AGENT_DIR=/var/lib/spawn
SPAWN_POWEROFF_ON_EXIT=1
SPAWN_EXECUTOR=$executor
ENV
}

log "spawn $SPAWN_VERSION ($STACK_NAME), mode $MODE"
ensure_node
install_agent
install_executor
install_unit
case $MODE in
  install) log "installed into $VERSION_DIR" ;;
  boot)
    TOKEN=$(imds_token)
    write_environment
    systemctl enable --now spawn-agent.service
    log "agent started for sweep $SWEEP as instance $INSTANCE"
    ;;
  *) log "unknown mode $MODE"; exit 2 ;;
esac
