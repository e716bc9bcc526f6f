package ledgerlake.spark;

import java.util.Set;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.expressions.CallMethodViaReflection;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.expressions.SubqueryExpression;
import org.apache.spark.sql.catalyst.plans.logical.Command;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.execution.command.SetCommand;
import org.apache.spark.sql.execution.datasources.HadoopFsRelation;
import org.apache.spark.sql.execution.datasources.LogicalRelation;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import scala.Function1;
import scala.Option;
import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;
import scala.runtime.AbstractFunction2;
import scala.runtime.BoxedUnit;

/**
 * Spark session extension: with {@code spark.ledgerlake.sql.readOnly=true}, a session answers queries only.
 *
 * <p>A check rule runs on every analysed plan before anything executes. It refuses every command
 * (DML, DDL, VACUUM, RESTORE, OPTIMIZE, ADD JAR, CACHE, ...) but SHOW, DESCRIBE, EXPLAIN and USE,
 * every SET that changes a setting outside a short list of harmless ones (so the read-only switch,
 * Delta's safety checks and SQL on files stay as started), reads of files outside the lake root
 * ({@code spark.ledgerlake.sql.lakeRoot}), and Java reflection from SQL ({@code reflect},
 * {@code java_method}). Without the switch the rule does nothing: the loads run in sessions that
 * have it installed.
 */
public final class ReadOnlySql extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {
    public static final String READ_ONLY = "spark.ledgerlake.sql.readOnly";
    public static final String LAKE_ROOT = "spark.ledgerlake.sql.lakeRoot";

    /** Settings a read-only client may change: presentation and tuning of its own queries. */
    static final Set<String> SETTABLE = Set.of(
            "spark.sql.session.timeZone", "spark.sql.ansi.enabled", "spark.sql.shuffle.partitions",
            "spark.sql.adaptive.enabled", "spark.sql.autoBroadcastJoinThreshold", "spark.sql.files.maxPartitionBytes",
            "spark.sql.execution.arrow.pyspark.enabled", "spark.sql.legacy.timeParserPolicy");

    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        // Statements are judged as parsed, before analysis: some (Delta's RESTORE) run during analysis.
        extensions.injectParser(new AbstractFunction2<SparkSession, ParserInterface, ParserInterface>() {
            @Override
            public ParserInterface apply(SparkSession session, ParserInterface delegate) {
                return new ReadOnlyParser(session, delegate);
            }
        });
        // Reads of files and reflection are seen once names are resolved, still before anything runs.
        extensions.injectCheckRule(new AbstractFunction1<SparkSession, Function1<LogicalPlan, BoxedUnit>>() {
            @Override
            public Function1<LogicalPlan, BoxedUnit> apply(SparkSession session) {
                return new AbstractFunction1<LogicalPlan, BoxedUnit>() {
                    @Override
                    public BoxedUnit apply(LogicalPlan plan) {
                        check(session, plan);
                        return BoxedUnit.UNIT;
                    }
                };
            }
        });
        return BoxedUnit.UNIT;
    }

    static boolean enabled(SparkSession session) {
        return "true".equalsIgnoreCase(session.conf().get(READ_ONLY, "false"));
    }

    static void check(SparkSession session, LogicalPlan plan) {
        if (enabled(session)) {
            refuse(new Walk(session).plan(plan));
        }
    }

    static void refuse(String refusal) {
        if (refusal != null) {
            throw new SecurityException("read-only lake: " + refusal + ". Only queries are answered (SELECT, WITH, "
                    + "SHOW, DESCRIBE, EXPLAIN); a server started with --allow-writes accepts changes");
        }
    }

    /**
     * Why a plan node is a statement a read-only session refuses, or null: every command and parsed
     * statement (DML, DDL, Delta's utilities, ADD JAR, CACHE, ...) but SHOW, DESCRIBE, EXPLAIN and USE,
     * and every SET that changes a setting outside {@link #SETTABLE}.
     */
    static String statement(LogicalPlan plan) {
        String name = plan.getClass().getSimpleName();
        if (plan instanceof SetCommand set) {
            Option<Tuple2<String, Option<String>>> kv = set.kv();
            if (kv.isEmpty() || kv.get()._2().isEmpty()) {
                return null;     // SET, SET -v, SET key: reading settings
            }
            String key = kv.get()._1().trim();
            return SETTABLE.contains(key) ? null : "SET " + key + " is not allowed";
        }
        if (plan instanceof Command || name.endsWith("Statement")) {
            boolean reads = name.startsWith("Show") || name.startsWith("Describe") || name.equals("ExplainCommand")
                    || name.equals("SetCatalogAndNamespace") || name.equals("SetNamespaceCommand");
            return reads ? null : name.replaceAll("(Command|Statement)$", "") + " changes the lake or the server";
        }
        return null;
    }

    /** The first statement a parsed plan holds that a read-only session refuses, or null. */
    static String statements(LogicalPlan plan) {
        String refusal = statement(plan);
        if (refusal == null && plan.getClass().getSimpleName().equals("ExplainCommand")) {
            return null;         // explaining a statement does not run it
        }
        for (LogicalPlan child : CollectionConverters.asJava(plan.children())) {
            refusal = refusal != null ? refusal : statements(child);
        }
        return refusal;
    }

    /** The first reason to refuse an analysed plan, or null. */
    private static final class Walk {
        private final SparkSession session;
        private String root;

        Walk(SparkSession session) {
            this.session = session;
        }

        String plan(LogicalPlan plan) {
            String refusal = node(plan);
            if (refusal != null) {
                return refusal;
            }
            for (Expression e : CollectionConverters.asJava(plan.expressions())) {
                refusal = expression(e);
                if (refusal != null) {
                    return refusal;
                }
            }
            for (LogicalPlan child : CollectionConverters.asJava(plan.children())) {
                refusal = plan(child);
                if (refusal != null) {
                    return refusal;
                }
            }
            return null;
        }

        private String node(LogicalPlan plan) {
            String refusal = statement(plan);
            if (refusal != null) {
                return refusal;
            }
            if (plan instanceof LogicalRelation relation && relation.relation() instanceof HadoopFsRelation files) {
                for (Path path : CollectionConverters.asJava(files.location().rootPaths())) {
                    if (!insideLake(path)) {
                        return "reading " + path + " (outside the lake) is not allowed";
                    }
                }
            }
            return null;
        }

        private String expression(Expression e) {
            if (e instanceof CallMethodViaReflection) {
                return "reflect/java_method (Java reflection) is not allowed";
            }
            if (e instanceof SubqueryExpression sub) {
                String refusal = plan(sub.plan());
                if (refusal != null) {
                    return refusal;
                }
            }
            for (Expression child : CollectionConverters.asJava(e.children())) {
                String refusal = expression(child);
                if (refusal != null) {
                    return refusal;
                }
            }
            return null;
        }


        private boolean insideLake(Path path) {
            try {
                Configuration conf = session.sparkContext().hadoopConfiguration();
                if (root == null) {
                    String configured = session.conf().get(LAKE_ROOT, "");
                    if (configured.isEmpty()) {
                        return false;
                    }
                    Path lake = new Path(configured);
                    root = FileSystem.get(lake.toUri(), conf).makeQualified(lake).toString().replaceAll("/+$", "");
                }
                String target = FileSystem.get(path.toUri(), conf).makeQualified(path).toString();
                return target.equals(root) || target.startsWith(root + "/");
            } catch (java.io.IOException e) {
                return false;
            }
        }
    }
}
