package io.leadscoring.flink.kserve;

import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.table.catalog.Column;
import org.apache.flink.table.catalog.ResolvedCatalogModel;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.DecimalType;
import org.apache.flink.table.types.logical.LocalZonedTimestampType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.TimestampType;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * Scores rows through a KServe V1 predict route, batching rows that arrive together.
 *
 * <p>Replicas: {@code endpoint} may list several predict URLs, comma-separated (one per model-server
 * replica). Batches go round-robin to the replicas that are up ({@link EndpointPool}); a batch whose
 * replica cannot be reached, times out or answers 429/5xx is sent to the next replica at once, and a
 * replica that refused a connection is left out for a cool-down. Only when every replica has failed the
 * same batch does the retry wait for the backoff below.
 *
 * <p>Delivery: a batch that fails with a connection error, a timeout, 429 or 5xx is retried with
 * exponential backoff for up to {@code retry-timeout}; only then do its rows fail (and with them the
 * job, which Flink restarts from its last checkpoint). So a model server that is down for a few
 * seconds delays scores but loses none and duplicates none. A 4xx answer (or a prediction holding an
 * {@code error}) is the caller's mistake: it fails the rows at once, naming the server's reason.
 */
public class KServePredictFunction extends AsyncPredictFunction {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(KServePredictFunction.class);
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final String endpoint;
    private final List<String> endpoints;
    private final long cooldownMs;
    private final long timeoutMs;
    private final long retryTimeoutMs;
    private final long backoffMs;
    private final long backoffMaxMs;
    private final int batchSize;
    private final long lingerMs;
    private final String authHeaderEnv;
    private final String[] inputNames;
    private final LogicalType[] inputTypes;
    private final String[] outputNames;
    private final LogicalType[] outputTypes;

    private transient EndpointPool pool;
    private transient HttpClient http;
    private transient ScheduledExecutorService timer;
    private transient String authHeader;
    private transient List<Pending> batch;
    private transient ScheduledFuture<?> lingerTask;

    public KServePredictFunction(ResolvedCatalogModel model, ReadableConfig options) {
        this.endpoint = options.get(KServeOptions.ENDPOINT);
        this.endpoints = EndpointPool.parse(endpoint); // fails at planning on a malformed URL
        this.cooldownMs = Math.max(1, options.get(KServeOptions.FAILOVER_COOLDOWN).toMillis());
        this.timeoutMs = options.get(KServeOptions.TIMEOUT).toMillis();
        this.retryTimeoutMs = options.get(KServeOptions.RETRY_TIMEOUT).toMillis();
        this.backoffMs = Math.max(1, options.get(KServeOptions.RETRY_BACKOFF).toMillis());
        this.backoffMaxMs = Math.max(backoffMs, options.get(KServeOptions.RETRY_BACKOFF_MAX).toMillis());
        this.batchSize = Math.max(1, options.get(KServeOptions.BATCH_SIZE));
        this.lingerMs = Math.max(0, options.get(KServeOptions.BATCH_LINGER).toMillis());
        this.authHeaderEnv = options.getOptional(KServeOptions.AUTH_HEADER_ENV).orElse(null);
        List<Column> in = model.getResolvedInputSchema().getColumns();
        List<Column> out = model.getResolvedOutputSchema().getColumns();
        this.inputNames = in.stream().map(Column::getName).toArray(String[]::new);
        this.inputTypes = in.stream().map(c -> c.getDataType().getLogicalType()).toArray(LogicalType[]::new);
        this.outputNames = out.stream().map(Column::getName).toArray(String[]::new);
        this.outputTypes = out.stream().map(c -> c.getDataType().getLogicalType()).toArray(LogicalType[]::new);
        for (LogicalType t : outputTypes) {
            checkOutputType(t);
        }
        for (LogicalType t : inputTypes) {
            checkInputType(t);
        }
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        super.open(context);
        http = HttpClient.newBuilder()
                .connectTimeout(Duration.ofMillis(timeoutMs))
                .version(HttpClient.Version.HTTP_1_1)
                .build();
        timer = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "kserve-model-timer");
            t.setDaemon(true);
            return t;
        });
        batch = new ArrayList<>();
        pool = new EndpointPool(endpoints, cooldownMs, Math.max(cooldownMs, 30_000L), System::currentTimeMillis);
        if (authHeaderEnv != null) {
            authHeader = System.getenv(authHeaderEnv);
            if (authHeader == null) {
                throw new IllegalStateException("environment variable " + authHeaderEnv + " is not set");
            }
        }
        LOG.info("kserve model provider: {} ({} replica(s), batch {} rows, linger {} ms, timeout {} ms, retries for {} ms)",
                endpoints, endpoints.size(), batchSize, lingerMs, timeoutMs, retryTimeoutMs);
    }

    @Override
    public void close() throws Exception {
        if (pool != null && pool.size() > 1) {
            LOG.info("kserve model provider: batches sent per replica {}: {}", endpoints,
                    java.util.Arrays.toString(pool.sentCounts()));
        }
        if (timer != null) {
            timer.shutdownNow();
        }
        super.close();
    }

    @Override
    public CompletableFuture<Collection<RowData>> asyncPredict(RowData row) {
        CompletableFuture<Collection<RowData>> future = new CompletableFuture<>();
        ObjectNode instance;
        try {
            instance = toJson(row);
        } catch (RuntimeException e) {
            future.completeExceptionally(e);
            return future;
        }
        List<Pending> ready = null;
        synchronized (this) {
            batch.add(new Pending(instance, future));
            if (batch.size() >= batchSize || lingerMs == 0) {
                ready = takeBatch();
            } else if (lingerTask == null) {
                lingerTask = timer.schedule(this::flushFromTimer, lingerMs, TimeUnit.MILLISECONDS);
            }
        }
        if (ready != null) {
            send(ready, 0, System.currentTimeMillis());
        }
        return future;
    }

    private void flushFromTimer() {
        List<Pending> ready;
        synchronized (this) {
            lingerTask = null;
            ready = takeBatch();
        }
        if (!ready.isEmpty()) {
            send(ready, 0, System.currentTimeMillis());
        }
    }

    private List<Pending> takeBatch() {
        if (lingerTask != null) {
            lingerTask.cancel(false);
            lingerTask = null;
        }
        List<Pending> taken = batch;
        batch = new ArrayList<>();
        return taken;
    }

    private void send(List<Pending> rows, int attempt, long firstTryMs) {
        ObjectNode body = MAPPER.createObjectNode();
        ArrayNode instances = body.putArray("instances");
        for (Pending p : rows) {
            instances.add(p.instance);
        }
        int replica = pool.next();
        String target = pool.url(replica);
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(target))
                .timeout(Duration.ofMillis(timeoutMs))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body.toString()));
        if (authHeader != null) {
            request.header("Authorization", authHeader);
        }
        http.sendAsync(request.build(), HttpResponse.BodyHandlers.ofString())
                .whenComplete((resp, error) -> {
                    String retryReason = null;
                    if (error != null) {
                        Throwable cause = error instanceof CompletionException && error.getCause() != null
                                ? error.getCause() : error;
                        if (cause instanceof IOException) {
                            retryReason = target + ": " + cause.getClass().getSimpleName() + ": " + cause.getMessage();
                            if (!(cause instanceof java.net.http.HttpTimeoutException)
                                    || cause instanceof java.net.http.HttpConnectTimeoutException) {
                                pool.failed(replica); // refused / reset / unreachable: leave it out for a while
                            }
                        } else {
                            failAll(rows, cause);
                            return;
                        }
                    } else if (resp.statusCode() == 429 || resp.statusCode() >= 500) {
                        retryReason = target + ": HTTP " + resp.statusCode() + ": " + abbreviate(resp.body());
                    } else if (resp.statusCode() >= 400) {
                        failAll(rows, new IllegalArgumentException(
                                "model server answered HTTP " + resp.statusCode() + " from " + target + ": "
                                        + abbreviate(resp.body())));
                        return;
                    } else {
                        pool.succeeded(replica);
                    }
                    if (retryReason != null) {
                        retry(rows, attempt, firstTryMs, retryReason);
                        return;
                    }
                    try {
                        complete(rows, resp.body(), target);
                    } catch (RuntimeException | IOException e) {
                        failAll(rows, e);
                    }
                });
    }

    private void retry(List<Pending> rows, int attempt, long firstTryMs, String reason) {
        long elapsed = System.currentTimeMillis() - firstTryMs;
        if (elapsed >= retryTimeoutMs) {
            failAll(rows, new IOException("model server " + endpoint + " still failing after " + elapsed
                    + " ms and " + (attempt + 1) + " attempts: " + reason));
            return;
        }
        int replicas = pool.size();
        if (replicas > 1 && (attempt + 1) % replicas != 0) {
            // failover: the next replica gets the batch now; only a full round of failures waits
            if (attempt == 0) {
                LOG.warn("model server call failed ({}), sending {} rows to another replica", reason, rows.size());
            }
            timer.execute(() -> send(rows, attempt + 1, firstTryMs));
            return;
        }
        int rounds = attempt / replicas;
        long delay = Math.min(backoffMaxMs, backoffMs << Math.min(rounds, 20));
        if (attempt == 0 || attempt % 10 == 0) {
            LOG.warn("model server call failed ({}), retrying {} rows in {} ms (attempt {})",
                    reason, rows.size(), delay, attempt + 1);
        }
        timer.schedule(() -> send(rows, attempt + 1, firstTryMs), delay, TimeUnit.MILLISECONDS);
    }

    private static void failAll(List<Pending> rows, Throwable error) {
        for (Pending p : rows) {
            p.future.completeExceptionally(error);
        }
    }

    private void complete(List<Pending> rows, String responseBody, String target) throws IOException {
        JsonNode predictions = MAPPER.readTree(responseBody).get("predictions");
        if (predictions == null || !predictions.isArray() || predictions.size() != rows.size()) {
            throw new IOException("expected " + rows.size() + " predictions from " + target + ", got: "
                    + abbreviate(responseBody));
        }
        Iterator<JsonNode> it = predictions.elements();
        for (Pending p : rows) {
            JsonNode prediction = it.next();
            if (prediction.has("error")) {
                p.future.completeExceptionally(new IllegalArgumentException(
                        "model server rejected a row: " + prediction.get("error").asText()));
                continue;
            }
            try {
                p.future.complete(Collections.singletonList(toRow(prediction)));
            } catch (RuntimeException e) {
                p.future.completeExceptionally(e);
            }
        }
    }

    // -- conversions -------------------------------------------------------------------------------

    private ObjectNode toJson(RowData row) {
        ObjectNode node = MAPPER.createObjectNode();
        for (int i = 0; i < inputNames.length; i++) {
            if (row.isNullAt(i)) {
                continue; // absent and null mean the same to the contract
            }
            String name = inputNames[i];
            LogicalType type = inputTypes[i];
            switch (type.getTypeRoot()) {
                case CHAR:
                case VARCHAR:
                    node.put(name, row.getString(i).toString());
                    break;
                case BOOLEAN:
                    node.put(name, row.getBoolean(i));
                    break;
                case TINYINT:
                    node.put(name, row.getByte(i));
                    break;
                case SMALLINT:
                    node.put(name, row.getShort(i));
                    break;
                case INTEGER:
                    node.put(name, row.getInt(i));
                    break;
                case BIGINT:
                    node.put(name, row.getLong(i));
                    break;
                case FLOAT:
                    node.put(name, row.getFloat(i));
                    break;
                case DOUBLE:
                    node.put(name, row.getDouble(i));
                    break;
                case DECIMAL: {
                    DecimalType d = (DecimalType) type;
                    node.put(name, row.getDecimal(i, d.getPrecision(), d.getScale()).toBigDecimal());
                    break;
                }
                case TIMESTAMP_WITHOUT_TIME_ZONE:
                    node.put(name, row.getTimestamp(i, ((TimestampType) type).getPrecision())
                            .toInstant().toString());
                    break;
                case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
                    node.put(name, row.getTimestamp(i, ((LocalZonedTimestampType) type).getPrecision())
                            .toInstant().toString());
                    break;
                default:
                    throw new IllegalStateException("unsupported input type " + type); // checked earlier
            }
        }
        return node;
    }

    private RowData toRow(JsonNode prediction) {
        Map<String, JsonNode> byName = new java.util.HashMap<>();
        prediction.fields().forEachRemaining(e -> byName.put(e.getKey().toLowerCase(Locale.ROOT), e.getValue()));
        GenericRowData row = new GenericRowData(outputNames.length);
        for (int i = 0; i < outputNames.length; i++) {
            JsonNode value = byName.get(outputNames[i].toLowerCase(Locale.ROOT));
            row.setField(i, value == null || value.isNull() ? null : convert(value, outputTypes[i], outputNames[i]));
        }
        return row;
    }

    private static Object convert(JsonNode value, LogicalType type, String name) {
        switch (type.getTypeRoot()) {
            case CHAR:
            case VARCHAR:
                return StringData.fromString(value.isTextual() ? value.asText() : value.toString());
            case BOOLEAN:
                return value.asBoolean();
            case INTEGER:
                return value.asInt();
            case BIGINT:
                return value.asLong();
            case FLOAT:
                return (float) value.asDouble();
            case DOUBLE:
                return value.asDouble();
            case ARRAY: {
                if (!value.isArray()) {
                    throw new IllegalArgumentException("output " + name + " is not an array: " + value);
                }
                LogicalType element = ((ArrayType) type).getElementType();
                Object[] items = new Object[value.size()];
                for (int j = 0; j < items.length; j++) {
                    JsonNode item = value.get(j);
                    items[j] = item == null || item.isNull() ? null : convert(item, element, name);
                }
                return new GenericArrayData(items);
            }
            default:
                throw new IllegalStateException("unsupported output type " + type); // checked earlier
        }
    }

    private static void checkInputType(LogicalType type) {
        switch (type.getTypeRoot()) {
            case CHAR: case VARCHAR: case BOOLEAN: case TINYINT: case SMALLINT: case INTEGER: case BIGINT:
            case FLOAT: case DOUBLE: case DECIMAL: case TIMESTAMP_WITHOUT_TIME_ZONE:
            case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
                return;
            default:
                throw new IllegalArgumentException("kserve model input type " + type + " is not supported");
        }
    }

    private static void checkOutputType(LogicalType type) {
        switch (type.getTypeRoot()) {
            case CHAR: case VARCHAR: case BOOLEAN: case INTEGER: case BIGINT: case FLOAT: case DOUBLE:
                return;
            case ARRAY:
                checkOutputType(((ArrayType) type).getElementType());
                return;
            default:
                throw new IllegalArgumentException("kserve model output type " + type + " is not supported");
        }
    }

    private static String abbreviate(String text) {
        return text == null ? "" : text.length() > 500 ? text.substring(0, 500) + "..." : text;
    }

    private static final class Pending {
        final ObjectNode instance;
        final CompletableFuture<Collection<RowData>> future;

        Pending(ObjectNode instance, CompletableFuture<Collection<RowData>> future) {
            this.instance = instance;
            this.future = future;
        }
    }
}
