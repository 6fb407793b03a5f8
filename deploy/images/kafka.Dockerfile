# Apache Kafka 4.4 in KRaft mode, one broker+controller node, from its Maven Central jars (the build context's
# lib/, resolved by deploy/images/build.sh with deploy/beacon/deploy/local/kafka-jars/pom.xml). Real users may
# run the official apache/kafka image instead; this one is configured as `make up` configures its broker:
# SASL/SCRAM-SHA-512 for clients and brokers, SASL/PLAIN for the controller, ACLs, nobody allowed by default.
ARG JRE=beacon-jre:17
FROM ${JRE}
COPY lib/ /opt/kafka/lib/
COPY kafka-entrypoint.sh /opt/kafka/entrypoint.sh
RUN mkdir -p /var/lib/kafka && chown 10001:10001 /var/lib/kafka && chmod 700 /var/lib/kafka
USER 10001:10001
ENV KAFKA_PORT=9092 KAFKA_CONTROLLER_PORT=9093 KAFKA_ADVERTISED_HOST=127.0.0.1 KAFKA_NODE_ID=1 \
    KAFKA_SECRETS=/run/secrets/kafka KAFKA_HEAP="-Xms256m -Xmx1g"
VOLUME /var/lib/kafka
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/sh", "/opt/kafka/entrypoint.sh"]
