package io.leadscoring.flink.kserve;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.table.factories.ModelProviderFactory;
import org.apache.flink.table.functions.AsyncPredictFunction;
import org.apache.flink.table.ml.AsyncPredictRuntimeProvider;
import org.apache.flink.table.ml.ModelProvider;

import java.util.Set;

/**
 * {@code 'provider'='kserve'}: ML_PREDICT against a KServe V1 predict route (rows in, rows out).
 *
 * <p>Input columns become one JSON object per row (column name -> value), output columns are read by
 * name (case-insensitive) from the matching prediction object.
 */
public class KServeModelProviderFactory implements ModelProviderFactory {
    public static final String IDENTIFIER = "kserve";

    @Override
    public ModelProvider createModelProvider(Context context) {
        FactoryUtil.ModelProviderFactoryHelper helper =
                FactoryUtil.createModelProviderFactoryHelper(this, context);
        helper.validate();
        return new Provider(new KServePredictFunction(context.getCatalogModel(), helper.getOptions()));
    }

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return Set.of(KServeOptions.ENDPOINT);
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        return Set.of(
                KServeOptions.TIMEOUT,
                KServeOptions.RETRY_TIMEOUT,
                KServeOptions.RETRY_BACKOFF,
                KServeOptions.RETRY_BACKOFF_MAX,
                KServeOptions.BATCH_SIZE,
                KServeOptions.BATCH_LINGER,
                KServeOptions.FAILOVER_COOLDOWN,
                KServeOptions.AUTH_HEADER_ENV);
    }

    /** Hands the planner the async function. */
    public static class Provider implements AsyncPredictRuntimeProvider {
        private final AsyncPredictFunction function;

        public Provider(AsyncPredictFunction function) {
            this.function = function;
        }

        @Override
        public AsyncPredictFunction createAsyncPredictFunction(ModelProvider.Context context) {
            return function;
        }

        @Override
        public ModelProvider copy() {
            return new Provider(function);
        }
    }
}
