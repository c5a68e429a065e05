package io.leadscoring.flink.contract;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.format.DateTimeParseException;

import org.junit.jupiter.api.Test;

class ContractCheckTest {
    private static final long NOON_UTC = 1_767_268_800_000L; // 2026-01-01T12:00:00Z

    @Test
    void readsEveryTimestampSpellingOfTheContract() {
        assertEquals(NOON_UTC, ContractCheck.parseInstantMillis("2026-01-01T12:00:00Z"));
        assertEquals(NOON_UTC, ContractCheck.parseInstantMillis("2026-01-01 12:00:00Z"));
        assertEquals(NOON_UTC, ContractCheck.parseInstantMillis("2026-01-01T12:00:00"));  // naive means UTC
        assertEquals(NOON_UTC, ContractCheck.parseInstantMillis("2026-01-01T12:00"));
        assertEquals(NOON_UTC + 250, ContractCheck.parseInstantMillis("2026-01-01T12:00:00.250Z"));
        assertEquals(NOON_UTC, ContractCheck.parseInstantMillis("2026-01-01T13:00:00+01:00"));
        assertEquals(NOON_UTC, ContractCheck.parseInstantMillis("2026-01-01T07:00:00-0500"));
    }

    @Test
    void anImpossibleInstantIsRefused() {
        assertThrows(DateTimeParseException.class, () -> ContractCheck.parseInstantMillis("2026-02-30T12:00:00Z"));
    }
}
