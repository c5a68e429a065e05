package io.leadscoring.flink.contract;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.regex.Pattern;

/**
 * {@code CONTRACT_CHECK(payload, spec)}: validate one raw CRM record against the contract.
 *
 * <p>The spec is rendered by lead_scoring/streaming/render.py from lead_scoring.contract (field names,
 * types, required/nullable/non-negative, allowed values, max string length, timestamp pattern), so the
 * contract keeps one definition. The function parses the payload ONCE (the SQL-only checks parse it for
 * every JSON_VALUE call) and returns one row: the reason ('' when valid, worded like
 * lead_scoring.contract.validation) and, for a valid record, the normalized field values as strings in
 * the spec's field order (timestamps as epoch milliseconds; NULL when absent), which the statement casts
 * to the Avro columns by position.
 *
 * <p>A scalar function (not a LATERAL TABLE): the validate statement computes it once per record in a view
 * both of its INSERTs read, and the planner shares that view's plan (two correlates checked every record
 * twice). The values are an array, not a map: a map lookup per column was a linear scan of the keys.
 */
public class ContractCheck extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private transient String cachedSpecText;
    private transient Spec spec;

    public @DataTypeHint("ROW<reason STRING, vals ARRAY<STRING>>") Row eval(String payload, String specText) {
        Spec s = spec(specText);
        if (payload == null) {
            return Row.of("$: empty message", null);
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(payload);
        } catch (JsonProcessingException e) {
            return Row.of("$: not valid JSON", null);
        }
        if (root == null || root.isMissingNode()) {
            return Row.of("$: not valid JSON", null);
        }
        if (!root.isObject()) {
            return Row.of("$: expected a JSON object, got " + jsonType(root), null);
        }
        String[] vals = new String[s.fields.size()];
        List<String> errors = null;
        for (int i = 0; i < vals.length; i++) {
            Field f = s.fields.get(i);
            JsonNode v = root.get(f.name);
            String reason = null;
            if (v == null || v.isNull()) {
                if (f.required) {
                    reason = "required field is missing";
                } else if (v != null && !f.nullable) {
                    reason = "must not be null";
                }
            } else {
                reason = check(f, v, s, vals, i);
            }
            if (reason != null) {
                if (errors == null) {
                    errors = new ArrayList<>();
                }
                errors.add(f.name + ": " + reason);
            }
        }
        return errors == null ? Row.of("", vals) : Row.of(String.join("; ", errors), null);
    }

    private static String check(Field f, JsonNode v, Spec s, String[] out, int i) {
        switch (f.type) {
            case "string": {
                if (!v.isTextual()) {
                    return "expected a string, got " + jsonType(v);
                }
                String text = v.asText();
                if (text.codePointCount(0, text.length()) > s.maxStringLength) {
                    return "longer than " + s.maxStringLength + " characters";
                }
                if (f.allowed != null && !f.allowed.contains(text)) {
                    return "must be one of " + String.join(", ", f.allowed) + "; got " + pyRepr(head(text));
                }
                if (f.required && text.strip().isEmpty()) {
                    return "must not be empty";
                }
                out[i] = text;
                return null;
            }
            case "boolean":
                if (!v.isBoolean()) {
                    return "expected a boolean, got " + jsonType(v);
                }
                out[i] = v.asBoolean() ? "true" : "false";
                return null;
            case "number":
            case "int": {
                if (!v.isNumber()) {
                    return "expected a number, got " + jsonType(v);
                }
                double d = v.asDouble();
                if (Double.isNaN(d) || Double.isInfinite(d)) {
                    return "must be a finite number";
                }
                if (f.nonNegative && d < 0) {
                    return "must be >= 0, got " + v.asText();
                }
                out[i] = f.type.equals("int") ? Long.toString(v.asLong()) : Double.toString(d);
                return null;
            }
            case "timestamp": {
                if (!v.isTextual()) {
                    return "expected an ISO-8601 timestamp string, got " + jsonType(v);
                }
                String text = v.asText();
                if (!s.timestampPattern.matcher(text).find()) {
                    return "not an ISO-8601 timestamp: " + pyRepr(head(text));
                }
                try {
                    out[i] = Long.toString(parseInstantMillis(text));
                } catch (DateTimeParseException e) {
                    return "not a valid timestamp";
                }
                return null;
            }
            default:
                throw new IllegalStateException("unknown field type " + f.type);
        }
    }

    private static final Pattern ZONE_AT_END = Pattern.compile("[+-]\\d{2}:?\\d{2}$");
    private static final Pattern ZONE_WITHOUT_COLON = Pattern.compile("([+-]\\d{2})(\\d{2})$");

    /**
     * Contract timestamps: 'T' or ' ', optional seconds/fraction, optional zone (naive means UTC).
     * The patterns are compiled once: String.matches/replaceFirst compiled three regexes per timestamp,
     * a visible share of the validate statement's CPU at thousands of records per second.
     */
    static long parseInstantMillis(String text) {
        int space = text.indexOf(' ');
        String t = space < 0 ? text : text.substring(0, space) + 'T' + text.substring(space + 1);
        if (t.endsWith("Z")) {
            t = t.substring(0, t.length() - 1) + "+00:00";
        } else if (!ZONE_AT_END.matcher(t).find() || t.length() <= 10) {
            t = t + "+00:00";
        }
        java.util.regex.Matcher noColon = ZONE_WITHOUT_COLON.matcher(t);
        if (noColon.find()) {
            t = t.substring(0, noColon.start()) + noColon.group(1) + ":" + noColon.group(2);
        }
        return OffsetDateTime.parse(t).toInstant().toEpochMilli();
    }

    private static String head(String text) {
        return text.length() > 40 ? text.substring(0, 40) : text;
    }

    /** Python's repr() of a str, for the common cases the reasons quote. */
    static String pyRepr(String text) {
        String escaped = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t");
        if (text.contains("'") && !text.contains("\"")) {
            return "\"" + escaped + "\"";
        }
        return "'" + escaped.replace("'", "\\'") + "'";
    }

    static String jsonType(JsonNode v) {
        if (v == null || v.isNull()) {
            return "null";
        }
        if (v.isBoolean()) {
            return "boolean";
        }
        if (v.isNumber()) {
            return "number";
        }
        if (v.isTextual()) {
            return "string";
        }
        if (v.isArray()) {
            return "array";
        }
        return "object";
    }

    private Spec spec(String text) {
        if (spec == null || !text.equals(cachedSpecText)) {
            spec = Spec.parse(text);
            cachedSpecText = text;
        }
        return spec;
    }

    static final class Field {
        String name;
        String type;
        boolean required;
        boolean nullable;
        boolean nonNegative;
        List<String> allowed;
    }

    static final class Spec {
        List<Field> fields = new ArrayList<>();
        int maxStringLength;
        Pattern timestampPattern;

        static Spec parse(String text) {
            try {
                JsonNode root = MAPPER.readTree(text);
                Spec s = new Spec();
                s.maxStringLength = root.get("max_string_length").asInt();
                s.timestampPattern = Pattern.compile(root.get("timestamp_pattern").asText());
                for (Iterator<JsonNode> it = root.get("fields").elements(); it.hasNext(); ) {
                    JsonNode n = it.next();
                    Field f = new Field();
                    f.name = n.get("name").asText();
                    f.type = n.get("type").asText();
                    f.required = n.get("required").asBoolean();
                    f.nullable = n.get("nullable").asBoolean();
                    f.nonNegative = n.get("non_negative").asBoolean();
                    if (n.hasNonNull("allowed")) {
                        f.allowed = new ArrayList<>();
                        for (JsonNode a : n.get("allowed")) {
                            f.allowed.add(a.asText());
                        }
                    }
                    s.fields.add(f);
                }
                return s;
            } catch (JsonProcessingException | NullPointerException e) {
                throw new IllegalArgumentException("bad CONTRACT_CHECK spec: " + e.getMessage(), e);
            }
        }
    }
}
