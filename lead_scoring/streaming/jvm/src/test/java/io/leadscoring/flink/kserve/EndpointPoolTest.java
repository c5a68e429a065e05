package io.leadscoring.flink.kserve;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Test;

class EndpointPoolTest {
    private final AtomicLong now = new AtomicLong(1_000);

    private EndpointPool pool(int n) {
        List<String> urls = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            urls.add("http://127.0.0.1:" + (8080 + i) + "/v1/models/lead_scorer:predict");
        }
        return new EndpointPool(urls, 1_000, 30_000, now::get);
    }

    @Test
    void parsesOneOrSeveralEndpoints() {
        assertEquals(List.of("http://a:8080/p"), EndpointPool.parse("http://a:8080/p"));
        assertEquals(List.of("http://a:8080/p", "https://b:8443/p"),
                EndpointPool.parse(" http://a:8080/p , https://b:8443/p ,"));
    }

    @Test
    void refusesWhatIsNotAnHttpUrl() {
        assertThrows(IllegalArgumentException.class, () -> EndpointPool.parse(" , "));
        assertThrows(IllegalArgumentException.class, () -> EndpointPool.parse("http://a:8080/p,a:8081/p"));
        assertThrows(IllegalArgumentException.class, () -> EndpointPool.parse("ftp://a/p"));
    }

    @Test
    void batchesGoRoundRobin() {
        EndpointPool pool = pool(3);
        int[] order = new int[6];
        for (int i = 0; i < order.length; i++) {
            order[i] = pool.next();
        }
        assertArrayEquals(new int[] {0, 1, 2, 0, 1, 2}, order);
        assertArrayEquals(new long[] {2, 2, 2}, pool.sentCounts());
    }

    @Test
    void aFailedReplicaIsLeftOutUntilItsCooldownEnds() {
        EndpointPool pool = pool(2);
        assertEquals(0, pool.next());
        pool.failed(0);
        assertFalse(pool.isUp(0));
        for (int i = 0; i < 4; i++) {
            assertEquals(1, pool.next()); // every batch fails over to the survivor
        }
        now.addAndGet(1_000);
        assertTrue(pool.isUp(0));
        int a = pool.next();
        int b = pool.next();
        assertEquals(1, a + b); // both back in the rotation
    }

    @Test
    void theCooldownDoublesWhileAReplicaKeepsFailingAndResetsOnSuccess() {
        EndpointPool pool = pool(2);
        pool.failed(0);
        now.addAndGet(1_000);
        assertTrue(pool.isUp(0));
        pool.failed(0); // failed again at once: 2 s now
        now.addAndGet(1_999);
        assertFalse(pool.isUp(0));
        now.addAndGet(1);
        assertTrue(pool.isUp(0));
        pool.succeeded(0);
        pool.failed(0); // a fresh failure starts at 1 s again
        now.addAndGet(1_000);
        assertTrue(pool.isUp(0));
    }

    @Test
    void whenEveryReplicaIsDownTheOneBackSoonestIsTried() {
        EndpointPool pool = pool(2);
        pool.failed(1);
        now.addAndGet(500);
        pool.failed(0);
        assertEquals(1, pool.next());
        EndpointPool single = pool(1);
        single.failed(0);
        assertEquals(0, single.next()); // one replica: always it (the retry backoff paces it)
    }
}
