# MirrorMaker 2 (dedicated mode) 4.3.1 from its Maven Central jars (the build context's lib/, resolved with
# deploy/beacon/deploy/local/mirror-jars/pom.xml). Its configuration is mounted at /etc/beacon/mirror.properties
# and holds no password: each is read from a mounted file by Kafka's DirectoryConfigProvider.
ARG JRE=beacon-jre:17
FROM ${JRE}
COPY lib/ /opt/mirror/lib/
USER 10001:10001
ENV MIRROR_HEAP="-Xms64m -Xmx384m"
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "-c", "exec java $MIRROR_HEAP -cp '/opt/mirror/lib/*' org.apache.kafka.connect.mirror.MirrorMaker /etc/beacon/mirror.properties"]
