# Java 17 from Debian's packages, under Kafka's and MirrorMaker's images (deploy/images/build.sh).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 beacon \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin beacon
