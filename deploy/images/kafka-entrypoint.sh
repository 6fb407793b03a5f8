#!/bin/sh
# One KRaft node. Passwords come from files (KAFKA_SECRETS/admin, broker, controller); the generated
# server.properties holds them, so it lives in the data volume, mode 600, never in the image.
set -eu
umask 077
for who in admin broker controller; do
  [ -s "$KAFKA_SECRETS/$who" ] || { echo "missing password file $KAFKA_SECRETS/$who" >&2; exit 2; }
done
admin=$(cat "$KAFKA_SECRETS/admin"); broker=$(cat "$KAFKA_SECRETS/broker"); controller=$(cat "$KAFKA_SECRETS/controller")
data=/var/lib/kafka
props=$data/server.properties
scram=org.apache.kafka.common.security.scram.ScramLoginModule
plain=org.apache.kafka.common.security.plain.PlainLoginModule
cat > "$props" <<PROPS
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=BROKER://0.0.0.0:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=BROKER://$KAFKA_ADVERTISED_HOST:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=BROKER
listener.security.protocol.map=BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
listener.name.broker.sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.broker.scram-sha-512.sasl.jaas.config=$scram required username="broker" password="$broker";
listener.name.controller.sasl.enabled.mechanisms=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.plain.sasl.jaas.config=$plain required username="controller" password="$controller" user_controller="$controller";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:broker;User:controller
log.dirs=$data/log
num.partitions=6
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
if [ ! -f "$data/log/meta.properties" ]; then
  java -cp "/opt/kafka/lib/*" kafka.tools.StorageTool format -t "$(java -cp "/opt/kafka/lib/*" kafka.tools.StorageTool random-uuid)" \
    -c "$props" --standalone \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$admin]" --add-scram "SCRAM-SHA-512=[name=broker,password=$broker]"
fi
# exec: the JVM is PID 1's only child of note, so SIGTERM reaches it (a controlled shutdown).
exec java $KAFKA_HEAP -cp "/opt/kafka/lib/*" kafka.Kafka "$props"
