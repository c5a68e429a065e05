package io.leadscoring.flink.contract;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.FunctionHint;
import org.apache.flink.table.functions.TableFunction;
import org.apache.flink.types.Row;

import java.time.OffsetDateTime;
import java.time.format.DateTimeParseException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * {@code LATERAL TABLE(CONTRACT_CHECK(payload, spec))}: validate one raw CRM record against the contract.
 *
 * <p>The spec is rendered by lead_scoring/streaming/render.py from lead_scoring.contract (field names,
 * types, required/nullable/non-negative, allowed values, max string length, timestamp pattern), so the
 * contract keeps one definition. The function parses the payload ONCE (the SQL-only checks parse it for
 * every JSON_VALUE call) and emits one row: the reason ('' when valid, worded like
 * lead_scoring.contract.validation) and the normalized field values as strings (timestamps as epoch
 * milliseconds), which the statement casts to the Avro columns.
 */
@FunctionHint(output = @DataTypeHint("ROW<reason STRING, fields MAP<STRING, STRING>>"))
public class ContractCheck extends TableFunction<Row> {
    private static final long serialVersionUID = 1L;
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private transient String cachedSpecText;
    private transient Spec spec;

    public void eval(String payload, String specText) {
        Spec s = spec(specText);
        Map<String, String> fields = new HashMap<>();
        if (payload == null) {
            collect(Row.of("$: empty message", fields));
            return;
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(payload);
        } catch (JsonProcessingException e) {
            collect(Row.of("$: not valid JSON", fields));
            return;
        }
        if (root == null || root.isMissingNode()) {
            collect(Row.of("$: not valid JSON", fields));
            return;
        }
        if (!root.isObject()) {
            collect(Row.of("$: expected a JSON object, got " + jsonType(root), fields));
            return;
        }
        List<String> errors = new ArrayList<>();
        for (Field f : s.fields) {
            JsonNode v = root.get(f.name);
            if (v == null || v.isNull()) {
                if (f.required) {
                    errors.add(f.name + ": required field is missing");
                } else if (v != null && !f.nullable) {
                    errors.add(f.name + ": must not be null");
                }
                continue;
            }
            String reason = check(f, v, s, fields);
            if (reason != null) {
                errors.add(f.name + ": " + reason);
            }
        }
        collect(Row.of(String.join("; ", errors), errors.isEmpty() ? fields : new HashMap<>()));
    }

    private static String check(Field f, JsonNode v, Spec s, Map<String, String> out) {
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
                out.put(f.name, text);
                return null;
            }
            case "boolean":
                if (!v.isBoolean()) {
                    return "expected a boolean, got " + jsonType(v);
                }
                out.put(f.name, v.asBoolean() ? "true" : "false");
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
                out.put(f.name, f.type.equals("int") ? Long.toString(v.asLong()) : Double.toString(d));
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
                    out.put(f.name, Long.toString(parseInstantMillis(text)));
                } catch (DateTimeParseException e) {
                    return "not a valid timestamp";
                }
                return null;
            }
            default:
                throw new IllegalStateException("unknown field type " + f.type);
        }
    }

    /** Contract timestamps: 'T' or ' ', optional seconds/fraction, optional zone (naive means UTC). */
    static long parseInstantMillis(String text) {
        String t = text.replaceFirst(" ", "T");
        if (t.endsWith("Z")) {
            t = t.substring(0, t.length() - 1) + "+00:00";
        } else if (!t.matches(".*[+-]\\d{2}:?\\d{2}$") || t.length() <= 10) {
            t = t + "+00:00";
        }
        t = t.replaceFirst("([+-]\\d{2})(\\d{2})$", "$1:$2");
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
