package ledgerlake.spark;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;

import io.delta.storage.HadoopFileSystemLogStore;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FSDataOutputStreamBuilder;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;

/**
 * Delta's transaction log on S3 with mutual exclusion between any number of writers: a commit file
 * is created with S3's conditional PUT ({@code If-None-Match: *}), so of two writers racing for
 * version N exactly one creates it and the other gets {@link java.nio.file.FileAlreadyExistsException},
 * which Delta turns into a conflict check and a retry on version N+1.
 *
 * <p>S3 has been strongly consistent for reads and listings since December 2020, so listing the log
 * needs no cache of recent writes (Delta's single-driver S3 store keeps one because S3 was not).
 * A single PUT is atomic: a reader never sees half a commit. Files Delta writes with overwrite allowed
 * (checkpoints, {@code _last_checkpoint}) are plain PUTs.
 */
public final class S3ConditionalLogStore extends HadoopFileSystemLogStore {
    public S3ConditionalLogStore(Configuration hadoopConf) {
        super(hadoopConf);
    }

    @Override
    public void write(Path path, Iterator<String> actions, Boolean overwrite, Configuration hadoopConf)
            throws IOException {
        FileSystem fs = path.getFileSystem(hadoopConf);
        boolean replace = Boolean.TRUE.equals(overwrite);
        try {
            FSDataOutputStreamBuilder<FSDataOutputStream, ?> create = fs.createFile(path).overwrite(replace);
            if (!replace) {
                create.must(Options.CreateFileOptionKeys.FS_OPTION_CREATE_CONDITIONAL_OVERWRITE, true);
            }
            try (FSDataOutputStream out = create.build()) {
                while (actions.hasNext()) {
                    out.write((actions.next() + "\n").getBytes(StandardCharsets.UTF_8));
                }
            }
        } catch (IOException e) {
            if (!replace && isAlreadyThere(e)) {
                java.nio.file.FileAlreadyExistsException exists =
                        new java.nio.file.FileAlreadyExistsException(path.toString());
                exists.initCause(e);
                throw exists;
            }
            throw e;
        }
    }

    /** The object exists: seen before the upload, or the conditional PUT was refused (HTTP 412). */
    private static boolean isAlreadyThere(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof org.apache.hadoop.fs.FileAlreadyExistsException
                    || t instanceof java.nio.file.FileAlreadyExistsException) {
                return true;
            }
            String message = String.valueOf(t.getMessage());
            if (message.contains("412") || message.contains("PreconditionFailed")) {
                return true;
            }
        }
        return false;
    }

    @Override
    public Boolean isPartialWriteVisible(Path path, Configuration hadoopConf) {
        return false;
    }
}
