// A Java consumer-group member for interop tests: the reference Kafka client, joining a group on
// one topic against any broker (kbench's bundled one, or Apache Kafka). Single file, no build:
//
//   java -cp "$(scripts/kafka.sh classpath)" tests/peers/java/GroupConsumer.java \
//       --bootstrap-server 127.0.0.1:9092 --topic t --group g --max-records 1000
//
// It consumes until --max-records records, --idle-ms without records (counted from its last
// record or partition assignment, once it has had an assignment), or
// --timeout-ms in all; commits synchronously on every revocation and at the end; then prints ONE
// JSON line on stdout. Diagnostics go to stderr.
//
// Exit codes: 0 consumed (target reached, or idle stop when no target was given);
// 1 the run worked but --max-records was not reached before --timeout-ms; 2 bad arguments or
// a client error.

import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class GroupConsumer {
    static final String USAGE = String.join("\n",
        "usage: java -cp <kafka classpath> GroupConsumer.java --bootstrap-server HOST:PORT --topic T",
        "           --group G [--max-records N] [--timeout-ms MS] [--idle-ms MS]",
        "           [--group-protocol classic|consumer] [--auto-offset-reset earliest|latest]",
        "           [--command-config FILE] [--property KEY=VALUE]...",
        "  --max-records N    stop after N records (default: no target; stop on idle or timeout)",
        "  --timeout-ms MS    stop after MS in all (default 60000)",
        "  --idle-ms MS       stop after MS without records or assignment changes, once assigned (default 5000)",
        "  --group-protocol   classic (default, the JoinGroup/SyncGroup protocol) or consumer (KIP-848)",
        "  --command-config   client properties file (e.g. SASL_SSL settings)",
        "  --property K=V     extra consumer property (repeatable; wins over --command-config)");

    /** Per-partition tally of what this member consumed. */
    static final class PartitionTally {
        long records;
        long bytes;
        long firstOffset = -1;
        long lastOffset = -1;
        /** Records whose offset was not above the last one seen (redelivered after a rebalance). */
        long redelivered;
        Long committed;
    }

    static int fail(String message) {
        System.err.println("GroupConsumer: error: " + message);
        System.err.println(USAGE);
        return 2;
    }

    public static void main(String[] args) {
        System.exit(run(args));
    }

    static int run(String[] args) {
        String bootstrap = null, topic = null, group = null, commandConfig = null;
        String protocol = "classic", reset = "earliest";
        long maxRecords = -1, timeoutMs = 60_000, idleMs = 5_000;
        Map<String, String> extra = new HashMap<>();
        try {
            for (int i = 0; i < args.length; i++) {
                String a = args[i];
                if (a.equals("-h") || a.equals("--help")) {
                    System.out.println(USAGE);
                    return 0;
                }
                if (i + 1 >= args.length) return fail(a + " needs a value");
                String v = args[++i];
                switch (a) {
                    case "--bootstrap-server": bootstrap = v; break;
                    case "--topic": topic = v; break;
                    case "--group": group = v; break;
                    case "--max-records": maxRecords = Long.parseLong(v); break;
                    case "--timeout-ms": timeoutMs = Long.parseLong(v); break;
                    case "--idle-ms": idleMs = Long.parseLong(v); break;
                    case "--group-protocol": protocol = v; break;
                    case "--auto-offset-reset": reset = v; break;
                    case "--command-config": commandConfig = v; break;
                    case "--property": {
                        int eq = v.indexOf('=');
                        if (eq <= 0) return fail("--property wants KEY=VALUE, got '" + v + "'");
                        extra.put(v.substring(0, eq), v.substring(eq + 1));
                        break;
                    }
                    default: return fail("unknown option '" + a + "'");
                }
            }
        } catch (NumberFormatException e) {
            return fail("a numeric option got a non-number: " + e.getMessage());
        }
        if (bootstrap == null || topic == null || group == null) {
            return fail("--bootstrap-server, --topic and --group are required");
        }
        if (!protocol.equals("classic") && !protocol.equals("consumer")) {
            return fail("--group-protocol wants classic or consumer, got '" + protocol + "'");
        }

        Properties props = new Properties();
        if (commandConfig != null) {
            try (InputStream in = new FileInputStream(commandConfig)) {
                props.load(in);
            } catch (IOException e) {
                return fail("cannot read --command-config " + commandConfig + ": " + e.getMessage());
            }
        }
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, reset);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.putIfAbsent(ConsumerConfig.CLIENT_ID_CONFIG, "kbench-java-group-consumer");
        props.putAll(extra);

        Map<TopicPartition, PartitionTally> tallies = new TreeMap<>(
            (x, y) -> x.topic().equals(y.topic()) ? Integer.compare(x.partition(), y.partition())
                                                  : x.topic().compareTo(y.topic()));
        TreeSet<Integer> everAssigned = new TreeSet<>();
        int[] assignments = {0};
        long total = 0, totalBytes = 0;
        long started = System.nanoTime();
        long deadline = started + timeoutMs * 1_000_000L;
        long[] lastActivityAt = {-1};
        String stopReason = "timeout";
        String error = null;
        TreeSet<Integer> finalAssignment = new TreeSet<>();

        try (KafkaConsumer<byte[], byte[]> consumer =
                 new KafkaConsumer<>(props, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    // Hand off cleanly: whoever gets these partitions next starts after our records.
                    commit(consumer, tallies, partitions);
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    assignments[0]++;
                    lastActivityAt[0] = System.nanoTime();
                    System.err.println("GroupConsumer: assigned " + partitions);
                    for (TopicPartition tp : partitions) everAssigned.add(tp.partition());
                }
            });
            while (true) {
                long now = System.nanoTime();
                if (maxRecords >= 0 && total >= maxRecords) { stopReason = "max_records"; break; }
                if (now >= deadline) { stopReason = "timeout"; break; }
                if (lastActivityAt[0] >= 0 && now - lastActivityAt[0] >= idleMs * 1_000_000L) { stopReason = "idle"; break; }
                ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(100));
                if (batch.isEmpty()) continue;
                lastActivityAt[0] = System.nanoTime();
                for (ConsumerRecord<byte[], byte[]> r : batch) {
                    PartitionTally t = tallies.computeIfAbsent(
                        new TopicPartition(r.topic(), r.partition()), k -> new PartitionTally());
                    if (t.lastOffset >= 0 && r.offset() <= t.lastOffset) t.redelivered++;
                    if (t.firstOffset < 0 || r.offset() < t.firstOffset) t.firstOffset = r.offset();
                    t.lastOffset = Math.max(t.lastOffset, r.offset());
                    t.records++;
                    long size = (r.key() == null ? 0 : r.key().length) + (r.value() == null ? 0 : r.value().length);
                    t.bytes += size;
                    total++;
                    totalBytes += size;
                }
            }
            for (TopicPartition tp : consumer.assignment()) finalAssignment.add(tp.partition());
            commit(consumer, tallies, consumer.assignment());
        } catch (RuntimeException e) {
            error = e.toString();
            System.err.println("GroupConsumer: client error: " + e);
        }
        long elapsedMs = (System.nanoTime() - started) / 1_000_000L;

        StringBuilder json = new StringBuilder(256);
        json.append("{\"group\":").append(quote(group))
            .append(",\"topic\":").append(quote(topic))
            .append(",\"group_protocol\":").append(quote(protocol))
            .append(",\"records\":").append(total)
            .append(",\"bytes\":").append(totalBytes)
            .append(",\"elapsed_ms\":").append(elapsedMs)
            .append(",\"stop_reason\":").append(quote(stopReason))
            .append(",\"assignments\":").append(assignments[0])
            .append(",\"assigned_partitions\":").append(finalAssignment.toString().replace(" ", ""))
            .append(",\"ever_assigned_partitions\":").append(everAssigned.toString().replace(" ", ""))
            .append(",\"partitions\":{");
        boolean first = true;
        for (Map.Entry<TopicPartition, PartitionTally> e : tallies.entrySet()) {
            PartitionTally t = e.getValue();
            if (!first) json.append(',');
            first = false;
            json.append('"').append(e.getKey().partition()).append("\":{")
                .append("\"records\":").append(t.records)
                .append(",\"bytes\":").append(t.bytes)
                .append(",\"first_offset\":").append(t.firstOffset)
                .append(",\"last_offset\":").append(t.lastOffset)
                .append(",\"redelivered\":").append(t.redelivered)
                .append(",\"committed_offset\":").append(t.committed == null ? "null" : t.committed.toString())
                .append('}');
        }
        json.append('}');
        json.append(",\"error\":").append(error == null ? "null" : quote(error)).append('}');
        System.out.println(json);

        if (error != null) return 2;
        if (maxRecords >= 0 && total < maxRecords) return 1;
        return 0;
    }

    /** Commits the next offset after what we consumed on the given partitions. */
    static void commit(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, PartitionTally> tallies,
                       Collection<TopicPartition> partitions) {
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        List<PartitionTally> committed = new ArrayList<>();
        for (TopicPartition tp : partitions) {
            PartitionTally t = tallies.get(tp);
            if (t == null || t.lastOffset < 0) continue;
            offsets.put(tp, new OffsetAndMetadata(t.lastOffset + 1));
            committed.add(t);
        }
        if (offsets.isEmpty()) return;
        consumer.commitSync(offsets, Duration.ofSeconds(10));
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
            tallies.get(e.getKey()).committed = e.getValue().offset();
        }
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
                    else b.append(c);
            }
        }
        return b.append('"').toString();
    }
}
