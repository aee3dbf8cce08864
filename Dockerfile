# syntax=docker/dockerfile:1
#   Chorus image: every binary (broker, edge, the eight services, chorusd, bus tools)
#   in one image; docker-compose.yml and k8s/ pick the program with `command`.
#
#   docker build -t chorus:local .

# ---- build stage: Debian's -dev packages and a CMake build ------------------------
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev \
        libpq-dev libhiredis-dev libcurl4-openssl-dev libwebsockets-dev \
        libwebsockets-evlib-ev libev-dev libprotobuf-c-dev \
        protobuf-c-compiler libjansson-dev libsodium-dev libjwt-dev \
        uuid-dev python3 \
 && rm -rf /var/lib/apt/lists/*

#   The programs the image ships (tests/deploy checks this list against the
#   add_executable names and against docker-compose.yml and k8s/).
ARG CHORUS_BINARIES="chorus-broker chorus-edge chorus-auth chorus-chat chorus-agents chorus-rag chorus-integrations chorus-workflows chorus-channels chorus-analytics chorusd chorus-bus-inspect chorus-bus-echo"

WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build -j"$(nproc)" --target ${CHORUS_BINARIES} \
 && mkdir -p /out/bin /out/sql \
 && for b in ${CHORUS_BINARIES}; do install -s -m 0755 "/build/bin/$b" /out/bin/; done \
 && if [ -d schemas/sql ]; then cp -r schemas/sql/. /out/sql/; fi \
 && for lib in $(ldd /out/bin/* | awk '/=> \//{print $3}' | sort -u); do \
        dpkg -S "$lib" 2>/dev/null || dpkg -S "$(realpath "$lib")" 2>/dev/null \
            || dpkg -S "${lib#/usr}" 2>/dev/null || true; \
    done | grep -E '^[a-z0-9][a-z0-9.+-]*(:[a-z0-9]+)?: /' | cut -d: -f1 | sort -u \
        >/out/runtime-packages \
 && cat /out/runtime-packages

# ---- runtime stage: shared libraries only, a non-root user ------------------------
FROM debian:bookworm-slim
COPY --from=build /out/runtime-packages /tmp/runtime-packages
#   The fixed list covers what the build links today; runtime-packages adds whatever
#   the binaries link that the list misses. curl is for healthchecks.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates curl libzmq5 libczmq4 libmsgpackc2 libpq5 libhiredis0.14 \
        libcurl4 libwebsockets17 libwebsockets-evlib-ev libev4 libprotobuf-c1 \
        libjansson4 libsodium23 libjwt0 libuuid1 \
        $(cat /tmp/runtime-packages) \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages \
 && groupadd --system --gid 10001 chorus \
 && useradd --system --uid 10001 --gid chorus --home-dir /var/lib/chorus \
        --create-home --shell /usr/sbin/nologin chorus

COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/sql/ /usr/share/chorus/sql/

ENV CHORUS_SQL_DIR=/usr/share/chorus/sql \
    CHORUS_EDGE_HOST=0.0.0.0 \
    CHORUS_EDGE_PORT=8080 \
    CHORUS_LOG_LEVEL=info
USER 10001:10001
WORKDIR /var/lib/chorus
EXPOSE 8080 7100 7101 7102
#   All in one process by default; compose and k8s run one program per container.
CMD ["chorusd"]
