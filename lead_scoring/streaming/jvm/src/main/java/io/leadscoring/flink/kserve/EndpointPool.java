package io.leadscoring.flink.kserve;

import java.net.URI;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * The model-server replicas one ML_PREDICT operator sends its batches to: round-robin over the replicas
 * that are up, with failover.
 *
 * <p>A replica that refuses or drops a connection is set aside for a cool-down (doubling from
 * {@code cooldownMs} up to {@code maxCooldownMs} while it keeps failing), so the batches that follow go
 * to the others at once; after the cool-down it gets the next batch again and is back in the rotation on
 * its first success. When every replica is set aside, the one whose cool-down ends first is tried (a
 * single-replica pool therefore always answers with its one endpoint).
 *
 * <p>Thread-safe: batches are sent from the operator's thread and retried from HTTP callbacks.
 */
public final class EndpointPool {
    private final List<String> urls;
    private final long cooldownMs;
    private final long maxCooldownMs;
    private final LongSupplier clock;
    private final long[] downUntil;
    private final int[] failures;
    private final long[] sent;
    private int cursor;

    public EndpointPool(List<String> urls, long cooldownMs, long maxCooldownMs, LongSupplier clock) {
        if (urls.isEmpty()) {
            throw new IllegalArgumentException("at least one model endpoint is needed");
        }
        this.urls = Collections.unmodifiableList(new ArrayList<>(urls));
        this.cooldownMs = Math.max(1, cooldownMs);
        this.maxCooldownMs = Math.max(this.cooldownMs, maxCooldownMs);
        this.clock = clock;
        this.downUntil = new long[urls.size()];
        this.failures = new int[urls.size()];
        this.sent = new long[urls.size()];
    }

    /**
     * The endpoints of a {@code 'endpoint'} option: one URL, or several separated by commas (blanks
     * ignored). Every one must be an absolute http(s) URL.
     */
    public static List<String> parse(String option) {
        List<String> out = new ArrayList<>();
        for (String part : option.split(",")) {
            String url = part.trim();
            if (url.isEmpty()) {
                continue;
            }
            URI uri = URI.create(url); // IllegalArgumentException on a malformed URL
            if (uri.getScheme() == null || !(uri.getScheme().equals("http") || uri.getScheme().equals("https"))
                    || uri.getHost() == null) {
                throw new IllegalArgumentException("model endpoint '" + url + "' is not an http(s) URL");
            }
            out.add(url);
        }
        if (out.isEmpty()) {
            throw new IllegalArgumentException("'endpoint' holds no URL: give one or several, comma-separated");
        }
        return out;
    }

    public int size() {
        return urls.size();
    }

    public String url(int index) {
        return urls.get(index);
    }

    /** The replica the next batch goes to. */
    public synchronized int next() {
        long now = clock.getAsLong();
        int n = urls.size();
        for (int step = 0; step < n; step++) {
            int i = (cursor + step) % n;
            if (downUntil[i] <= now) {
                cursor = (i + 1) % n;
                sent[i]++;
                return i;
            }
        }
        int soonest = 0;
        for (int i = 1; i < n; i++) {
            if (downUntil[i] < downUntil[soonest]) {
                soonest = i;
            }
        }
        cursor = (soonest + 1) % n;
        sent[soonest]++;
        return soonest;
    }

    /** The replica could not be reached: set it aside for its (growing) cool-down. */
    public synchronized void failed(int index) {
        int f = Math.min(30, failures[index]++);
        long wait = Math.min(maxCooldownMs, cooldownMs << Math.min(f, 20));
        downUntil[index] = clock.getAsLong() + wait;
    }

    /** The replica answered: back in the rotation. */
    public synchronized void succeeded(int index) {
        failures[index] = 0;
        downUntil[index] = 0;
    }

    public synchronized boolean isUp(int index) {
        return downUntil[index] <= clock.getAsLong();
    }

    /** Batches handed to each replica so far (for logs and tests). */
    public synchronized long[] sentCounts() {
        return sent.clone();
    }
}
