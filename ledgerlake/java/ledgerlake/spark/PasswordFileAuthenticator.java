package ledgerlake.spark;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.security.spec.KeySpec;
import java.util.Base64;

import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;

import org.apache.hive.service.auth.PasswdAuthenticationProvider;
import org.apache.spark.SparkEnv;

/**
 * The SQL server's password check (HiveServer2 CUSTOM authentication): users and salted PBKDF2-SHA256
 * hashes in the file named by {@code spark.ledgerlake.sql.passwordFile}, one {@code user:pbkdf2_sha256$
 * iterations$salt$hash} line each (base64), written by {@code ledgerlake serve-sql --hash-password}.
 * The file is read at every login, so users can be added or removed without a restart.
 */
public final class PasswordFileAuthenticator implements PasswdAuthenticationProvider {
    public static final String PASSWORD_FILE = "spark.ledgerlake.sql.passwordFile";

    @Override
    public void Authenticate(String user, String password) throws AuthenticationException {
        String file = SparkEnv.get().conf().get(PASSWORD_FILE, "");
        try {
            for (String line : Files.readAllLines(Paths.get(file), StandardCharsets.UTF_8)) {
                int colon = line.indexOf(':');
                if (colon > 0 && line.substring(0, colon).equals(user) && matches(line.substring(colon + 1), password)) {
                    return;
                }
            }
        } catch (IOException | RuntimeException e) {
            throw new AuthenticationException("password file unreadable");
        }
        throw new AuthenticationException("wrong user name or password");
    }

    static boolean matches(String stored, String password) {
        String[] parts = stored.trim().split("\\$");
        if (parts.length != 4 || !parts[0].equals("pbkdf2_sha256") || password == null) {
            return false;
        }
        try {
            byte[] salt = Base64.getDecoder().decode(parts[2]);
            byte[] expected = Base64.getDecoder().decode(parts[3]);
            KeySpec spec = new PBEKeySpec(password.toCharArray(), salt, Integer.parseInt(parts[1]), expected.length * 8);
            byte[] actual = SecretKeyFactory.getInstance("PBKDF2WithHmacSHA256").generateSecret(spec).getEncoded();
            return MessageDigest.isEqual(expected, actual);
        } catch (Exception e) {
            return false;
        }
    }
}
