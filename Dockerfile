# syntax=docker/dockerfile:1
#
# toolgate container image. Targets:
#   runtime         toolgate alone; upstreams are reached over Streamable HTTP (url: ...).
#                   The default: `docker build -t toolgate .`
#   runtime-docker  runtime + the docker CLI, for stdio upstreams launched as
#                   `command: [docker, run, -i, --rm, IMAGE]` through the host's Docker socket:
#                   `docker build -t toolgate:docker --target runtime-docker .`
# Build from the repository root (examples/compose.yml does: context ..).

# The toolchain link/toolgate.order was made with: its names carry rustc's hashes, so
# another release keeps the build working but loses the layout (idle RSS back to ~15 MiB).
ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm
ARG DOCKER_CLI_VERSION=27

# The docker CLI for runtime-docker (a stage of its own: COPY --from takes no build args).
FROM docker:${DOCKER_CLI_VERSION}-cli AS docker-cli

# ---- builder ------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
WORKDIR /src
# Only what the release binary is built from (src/ embeds examples/default.yml and
# slo_definitions.yml with include_str!; build.rs lays functions out as link/toolgate.order
# lists them, which keeps idle RSS ~6 MiB lower when the list matches this toolchain).
COPY Cargo.toml Cargo.lock build.rs ./
COPY link/toolgate.order ./link/
COPY src ./src
COPY examples ./examples
COPY slo_definitions.yml ./
# The cache mounts keep the registry and incremental target dir across builds (BuildKit);
# the binary is copied out of the cached target dir so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && install -D -m 0755 target/release/toolgate /out/toolgate

# ---- runtime ------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# No ca-certificates: toolgate speaks plain HTTP to upstreams (check refuses https://), and
# the docker CLI of runtime-docker talks to the engine over its unix socket (image pulls and
# registry TLS happen in the engine, not here).
# curl: the HEALTHCHECK below. toolgate has no health subcommand, and a bash /dev/tcp probe
#   would only prove that the port accepts connections (or hand-roll HTTP in shell); curl
#   checks the HTTP status of /healthz under a hard timeout, for ~10 MB with its libraries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 toolgate \
 && useradd --system --uid 10001 --gid toolgate --home-dir /var/lib/toolgate \
            --no-create-home --shell /usr/sbin/nologin toolgate \
 && install -d -o toolgate -g toolgate -m 0750 /var/lib/toolgate \
 && install -d -m 0755 /etc/toolgate
COPY --from=builder /out/toolgate /usr/local/bin/toolgate
COPY examples/docker-gateway.yml /etc/toolgate/gateway.yml
COPY slo_definitions.yml /etc/toolgate/slo_definitions.yml
# Durable state (data_dir in the config); mount a volume here.
VOLUME ["/var/lib/toolgate"]
USER toolgate:toolgate
WORKDIR /var/lib/toolgate
# 8790: MCP (Streamable HTTP at /mcp, bearer tokens). 8791: admin (/healthz, /readyz); keep
# it off public networks.
EXPOSE 8790 8791
# Liveness of the admin listener; the port must match listen.admin in the config.
# start-period: a journal schema upgrade runs at start before anything is served (the port
# accepts connections but /healthz does not answer; README, "journal"), about 7 s per
# million audit records from a cached file: raise it for a large journal, or a restart
# mid-upgrade rolls the upgrade back and starts it over.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "--max-time", "2", "-o", "/dev/null", "http://127.0.0.1:8791/healthz"]
ENTRYPOINT ["toolgate"]
# Append `--log-format json` for structured logs.
CMD ["serve", "--config", "/etc/toolgate/gateway.yml"]

# ---- runtime-docker -----------------------------------------------------------------------
# For upstreams started as `docker run -i --rm IMAGE`: the docker CLI talks to the host's
# engine through a mounted socket, so tool containers run as siblings of this one.
#   docker run -v /var/run/docker.sock:/var/run/docker.sock \
#              --group-add "$(stat -c %g /var/run/docker.sock)" ... toolgate:docker
# The toolgate user (uid 10001) must be in the socket's group: pass its numeric gid with
# --group-add (compose: group_add). Access to the socket is root-equivalent on the host.
#
# Debian bookworm has no client-only package: docker.io ships dockerd, containerd, runc and
# iptables (~150 MB) with a 20.10 client. The official docker:cli image carries the static
# client binary, which runs on any glibc or musl base.
FROM runtime AS runtime-docker
COPY --from=docker-cli /usr/local/bin/docker /usr/local/bin/docker

# ---- default ------------------------------------------------------------------------------
# The last stage is what `docker build` without --target produces: the plain runtime.
FROM runtime
