package dev.kgrec.neo4j;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.graphdb.QueryExecutionException;
import org.neo4j.logging.Level;
import org.neo4j.logging.log4j.Log4jLogProvider;

/**
 * Runs Neo4j Community embedded, with Bolt on loopback, until SIGTERM.
 *
 * <p>Usage: {@code java -cp ... dev.kgrec.neo4j.LocalNeo4j HOME_DIR CONFIG_FILE}. The config file
 * holds neo4j.conf-style settings written by {@code kgrec neo4j start}; the password for the
 * {@code neo4j} user comes from the environment variable {@code KGREC_NEO4J_PASSWORD} so that it
 * never shows in the process list. Prints {@code KGREC_NEO4J_READY <address>} once Bolt accepts
 * connections and {@code KGREC_NEO4J_STOPPED} after a clean shutdown.
 */
public final class LocalNeo4j {
    static final String READY = "KGREC_NEO4J_READY";
    static final String STOPPED = "KGREC_NEO4J_STOPPED";
    static final String PASSWORD_ENV = "KGREC_NEO4J_PASSWORD";

    private LocalNeo4j() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: LocalNeo4j HOME_DIR CONFIG_FILE");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        Path configFile = Path.of(args[1]);
        Map<String, String> config = readConfig(configFile);
        boolean authEnabled = Boolean.parseBoolean(config.getOrDefault("dbms.security.auth_enabled", "true"));

        DatabaseManagementService service =
                new DatabaseManagementServiceBuilder(home)
                        .loadPropertiesFromFile(configFile)
                        // The user log (what neo4j.log holds in a server install) goes to stdout,
                        // which `kgrec neo4j start` keeps in logs/launcher.log.
                        .setUserLogProvider(new Log4jLogProvider(System.out, Level.INFO))
                        .build();
        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM and SIGINT run shutdown hooks: close the store cleanly so the next start needs no recovery.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                service.shutdown();
                System.out.println(STOPPED);
                System.out.flush();
            } finally {
                stopped.countDown();
            }
        }, "kgrec-neo4j-shutdown"));

        if (authEnabled) {
            setPassword(service, System.getenv(PASSWORD_ENV));
        }
        System.out.println(READY + " " + config.get("server.bolt.listen_address"));
        System.out.flush();
        stopped.await();
    }

    /** Reads key=value lines; later lines win, blank lines and # comments are skipped. */
    static Map<String, String> readConfig(Path file) throws IOException {
        Properties properties = new Properties();
        try (InputStream in = Files.newInputStream(file)) {
            properties.load(in);
        }
        Map<String, String> config = new LinkedHashMap<>();
        for (String name : properties.stringPropertyNames()) {
            config.put(name, properties.getProperty(name).trim());
        }
        return config;
    }

    /**
     * Makes the neo4j user's password the one from settings, on every start, so that changing
     * the setting is enough to rotate it. The embedded API runs with full rights on the system
     * database; the password travels as a parameter.
     */
    static void setPassword(DatabaseManagementService service, String password) {
        if (password == null || password.isEmpty()) {
            throw new IllegalStateException(PASSWORD_ENV + " is not set but authentication is enabled");
        }
        GraphDatabaseService system = service.database("system");
        try {
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", password));
        } catch (QueryExecutionException e) {
            // Neo4j refuses to "change" a password to its current value: that is the state we want.
            if (e.getMessage() == null || !e.getMessage().contains("Old password and new password cannot be the same")) {
                throw e;
            }
        }
    }
}
