package io.leadscoring.flink.kserve;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;

import java.time.Duration;

/** The WITH options of {@code CREATE MODEL ... WITH ('provider'='kserve', ...)}. */
public final class KServeOptions {
    private KServeOptions() {}

    public static final ConfigOption<String> ENDPOINT =
            ConfigOptions.key("endpoint")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "Full URL of a KServe V1 predict route, e.g. "
                                    + "http://127.0.0.1:8080/v1/models/lead_scorer:predict; several "
                                    + "(one per model-server replica) separated by commas: batches go "
                                    + "round-robin to the replicas that are up, with failover.");

    public static final ConfigOption<Duration> FAILOVER_COOLDOWN =
            ConfigOptions.key("failover-cooldown")
                    .durationType()
                    .defaultValue(Duration.ofSeconds(1))
                    .withDescription(
                            "How long a replica that refused a connection is left out of the rotation; "
                                    + "doubled while it keeps failing, up to 30 s.");

    public static final ConfigOption<Duration> TIMEOUT =
            ConfigOptions.key("timeout")
                    .durationType()
                    .defaultValue(Duration.ofSeconds(10))
                    .withDescription("Timeout of one HTTP request (connect + answer).");

    public static final ConfigOption<Duration> RETRY_TIMEOUT =
            ConfigOptions.key("retry-timeout")
                    .durationType()
                    .defaultValue(Duration.ofMinutes(5))
                    .withDescription(
                            "How long a batch is retried (connection errors, timeouts, 429, 5xx) before the "
                                    + "row fails and Flink's restart strategy takes over. Keep it below "
                                    + "table.exec.async-ml-predict.timeout.");

    public static final ConfigOption<Duration> RETRY_BACKOFF =
            ConfigOptions.key("retry-backoff")
                    .durationType()
                    .defaultValue(Duration.ofMillis(100))
                    .withDescription("First retry delay; doubled on every retry up to retry-backoff-max.");

    public static final ConfigOption<Duration> RETRY_BACKOFF_MAX =
            ConfigOptions.key("retry-backoff-max")
                    .durationType()
                    .defaultValue(Duration.ofSeconds(2))
                    .withDescription("Longest delay between two retries.");

    public static final ConfigOption<Integer> BATCH_SIZE =
            ConfigOptions.key("batch-size")
                    .intType()
                    .defaultValue(64)
                    .withDescription(
                            "Most rows in one request. Rows that arrive while a request is in flight are "
                                    + "batched; keep table.exec.async-ml-predict.max-concurrent-operations "
                                    + "above it.");

    public static final ConfigOption<Duration> BATCH_LINGER =
            ConfigOptions.key("batch-linger")
                    .durationType()
                    .defaultValue(Duration.ofMillis(10))
                    .withDescription("How long the first row of a batch waits for company (0 = send at once).");

    public static final ConfigOption<String> AUTH_HEADER_ENV =
            ConfigOptions.key("auth-header-env")
                    .stringType()
                    .noDefaultValue()
                    .withDescription(
                            "Name of an environment variable of the TaskManager holding an Authorization "
                                    + "header value: the secret itself never appears in SQL.");
}
