package ledgerlake.spark;

import java.time.Instant;

import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerEvent;
import org.apache.spark.sql.hive.thriftserver.ui.SparkListenerThriftServerOperationStart;

/** Spark listener of the SQL server: one line on stderr per statement a client sends, with its user. */
public final class QueryLog extends SparkListener {
    @Override
    public void onOtherEvent(SparkListenerEvent event) {
        if (event instanceof SparkListenerThriftServerOperationStart start) {
            String statement = start.statement().replaceAll("\\s+", " ").trim();
            System.err.printf("%s ledgerlake serve-sql: query by %s (session %s): %s%n",
                    Instant.now(), start.userName(), start.sessionId(), statement);
        }
    }
}
