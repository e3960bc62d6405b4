package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse"
	"github.com/tallyhq/tally/server"
)

// configError is a bad configuration or command line: exit code 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// config is tally's configuration: environment variables (the README
// lists them), overridden by flags. The zero value is not valid; start from
// defaultConfig.
type config struct {
	ListenAddr       string           // LISTEN_ADDR
	DatabaseURL      string           // DATABASE_URL: an SQLite file path (default ./data/tally.db) or postgres://…
	EventsURL        string           // EVENTS_URL (optional): clickhouse://HOST:HTTP_PORT/DATABASE, the event log on ClickHouse
	RedisURL         string           // REDIS_URL (optional): usage counters shared by instances
	AnalyticsEnabled bool             // ANALYTICS_ENABLED
	MaxExportRows    int              // ANALYTICS_MAX_EXPORT_ROWS
	QuotasEnabled    bool             // QUOTAS_ENABLED
	QuotaDefaults    map[string]int64 // QUOTA_DEFAULTS (JSON object)
	Registration     string           // REGISTRATION: open | closed
	UsageRules       tally.UsageRules // USAGE_RULES (JSON array of {event, metric, sum})
	RedactKeys       []string         // REDACT_KEYS (comma separated; replaces the defaults)
	SQLiteSync       string           // SQLITE_SYNCHRONOUS: FULL | NORMAL
	IngestQueue      int              // INGEST_QUEUE_SIZE: events waiting for commit before 503
	StatementTimeout time.Duration    // DB_STATEMENT_TIMEOUT: bound of one database statement or transaction
	DrainDelay       time.Duration    // SHUTDOWN_DRAIN_DELAY: /readiness answers 503 this long before the listener stops
	RedisTimeout     time.Duration    // REDIS_TIMEOUT: bound of one Redis call
	Reconcile        time.Duration    // RECONCILE_INTERVAL: how often usage counters are compared with the log
	AbsenceInterval  time.Duration    // ABSENCE_INTERVAL: how often absence alerts are evaluated
	LabelCap         int              // METRICS_LABEL_CAP: distinct values per metric label
	MetricsAddr      string           // METRICS_ADDR: the operator listener (/metrics, /readiness details); "off": none
	MetricsToken     string           // METRICS_TOKEN: bearer token for /metrics on the public listener
	Pprof            bool             // PPROF: /debug/pprof on the operator listener (off by default)
	RollupDailyAt    time.Duration    // ROLLUP_DAILY_AT: offset after 00:00 UTC (default 10m)
	SessionTTL       time.Duration    // SESSION_TTL
	LoginHashMemory  int              // LOGIN_HASH_MEMORY_MB: memory for password hashes at once, in MiB
	LoginFreeAddress int              // LOGIN_FREE_FAILURES_PER_ADDRESS: failed logins from one address before back-off
	LoginFreeEmail   int              // LOGIN_FREE_FAILURES_PER_EMAIL: failed logins for one email from one address before back-off
	SecureCookies    bool             // SECURE_COOKIES
	WebhookPrivate   bool             // WEBHOOK_ALLOW_PRIVATE: quota webhooks may reach loopback and private addresses
	LogLevel         slog.Level       // LOG_LEVEL: debug | info | warn | error
	Demo             bool             // -demo / TALLY_DEMO: seed a demo tenant
	DevDir           string           // -dev: read templates and assets from this directory
}

func defaultConfig() config {
	return config{
		ListenAddr:       "127.0.0.1:8080",
		DatabaseURL:      filepath.Join("data", "tally.db"),
		AnalyticsEnabled: true,
		MaxExportRows:    50000,
		QuotasEnabled:    true,
		QuotaDefaults:    map[string]int64{},
		Registration:     "open",
		UsageRules:       tally.DefaultUsageRules(),
		SQLiteSync:       "FULL",
		IngestQueue:      10000,
		StatementTimeout: 5 * time.Second,
		DrainDelay:       5 * time.Second,
		RedisTimeout:     50 * time.Millisecond,
		Reconcile:        time.Minute,
		AbsenceInterval:  time.Minute,
		LabelCap:         100,
		MetricsAddr:      "127.0.0.1:9091",
		RollupDailyAt:    10 * time.Minute,
		SessionTTL:       30 * 24 * time.Hour,
		LoginHashMemory:  int(server.DefaultLoginLimits().HashMemory >> 20),
		LoginFreeAddress: int(server.DefaultLoginLimits().PerAddress.Free),
		LoginFreeEmail:   int(server.DefaultLoginLimits().PerEmail.Free),
		LogLevel:         slog.LevelInfo,
	}
}

// loadConfig reads the environment into a default config.
func loadConfig(getenv func(string) string) (config, error) {
	c := defaultConfig()
	var errs []string
	str := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	boolean := func(name string, dst *bool) {
		if v := getenv(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, name+" must be true or false")
			}
			*dst = b
		}
	}
	integer := func(name string, dst *int) {
		if v := getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				errs = append(errs, name+" must be an integer")
			}
			*dst = n
		}
	}
	duration := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, name+" must be a duration like 10m or 720h")
			}
			*dst = d
		}
	}
	str("LISTEN_ADDR", &c.ListenAddr)
	str("DATABASE_URL", &c.DatabaseURL)
	str("EVENTS_URL", &c.EventsURL)
	str("REDIS_URL", &c.RedisURL)
	boolean("ANALYTICS_ENABLED", &c.AnalyticsEnabled)
	integer("ANALYTICS_MAX_EXPORT_ROWS", &c.MaxExportRows)
	boolean("QUOTAS_ENABLED", &c.QuotasEnabled)
	// JSON settings decode into fresh values: decoding into the defaults
	// would merge with them (a rule's omitted fields would keep a default
	// rule's values).
	if v := getenv("QUOTA_DEFAULTS"); v != "" {
		var limits map[string]int64
		if err := json.Unmarshal([]byte(v), &limits); err != nil {
			errs = append(errs, `QUOTA_DEFAULTS must be a JSON object of metric to limit, like {"builds_daily":200}`)
		} else if limits != nil {
			c.QuotaDefaults = limits
		}
	}
	str("REGISTRATION", &c.Registration)
	if v := getenv("USAGE_RULES"); v != "" {
		var rules tally.UsageRules
		if err := json.Unmarshal([]byte(v), &rules); err != nil {
			errs = append(errs, `USAGE_RULES must be a JSON array like [{"event":"api.request","metric":"api_requests_daily"}]`)
		} else {
			c.UsageRules = rules
		}
	}
	if v := getenv("REDACT_KEYS"); v != "" {
		c.RedactKeys = nil
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); k != "" {
				c.RedactKeys = append(c.RedactKeys, k)
			}
		}
	}
	str("SQLITE_SYNCHRONOUS", &c.SQLiteSync)
	integer("INGEST_QUEUE_SIZE", &c.IngestQueue)
	duration("DB_STATEMENT_TIMEOUT", &c.StatementTimeout)
	duration("SHUTDOWN_DRAIN_DELAY", &c.DrainDelay)
	duration("REDIS_TIMEOUT", &c.RedisTimeout)
	duration("RECONCILE_INTERVAL", &c.Reconcile)
	duration("ABSENCE_INTERVAL", &c.AbsenceInterval)
	integer("METRICS_LABEL_CAP", &c.LabelCap)
	str("METRICS_ADDR", &c.MetricsAddr)
	str("METRICS_TOKEN", &c.MetricsToken)
	boolean("PPROF", &c.Pprof)
	duration("ROLLUP_DAILY_AT", &c.RollupDailyAt)
	duration("SESSION_TTL", &c.SessionTTL)
	integer("LOGIN_HASH_MEMORY_MB", &c.LoginHashMemory)
	integer("LOGIN_FREE_FAILURES_PER_ADDRESS", &c.LoginFreeAddress)
	integer("LOGIN_FREE_FAILURES_PER_EMAIL", &c.LoginFreeEmail)
	boolean("SECURE_COOKIES", &c.SecureCookies)
	boolean("WEBHOOK_ALLOW_PRIVATE", &c.WebhookPrivate)
	boolean("TALLY_DEMO", &c.Demo)
	if v := getenv("LOG_LEVEL"); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, "LOG_LEVEL must be debug, info, warn or error")
		}
	}
	if len(errs) > 0 {
		return c, &configError{msg: "bad configuration: " + strings.Join(errs, "; ")}
	}
	return c, nil
}

// bindFlags lets flags override the environment for the setting every
// command shares, the database; serve adds -listen.
func (c *config) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database", c.DatabaseURL, "SQLite file path or postgres:// URL (DATABASE_URL)")
}

// validate checks the configuration as a whole.
func (c *config) validate() error {
	var errs []string
	if c.ListenAddr == "" {
		errs = append(errs, "LISTEN_ADDR must not be empty")
	}
	if c.MaxExportRows < 1 || c.MaxExportRows > 10_000_000 {
		errs = append(errs, "ANALYTICS_MAX_EXPORT_ROWS must be 1-10000000")
	}
	if c.EventsURL != "" {
		if _, _, err := clickhouse.ParseURL(c.EventsURL); err != nil {
			errs = append(errs, err.Error())
		} else if c.postgresURL() == "" {
			errs = append(errs, "EVENTS_URL needs DATABASE_URL=postgres://…: identity, quotas, counters and rollups stay on PostgreSQL")
		}
	}
	if c.Registration != "open" && c.Registration != "closed" {
		errs = append(errs, "REGISTRATION must be open or closed")
	}
	for m, n := range c.QuotaDefaults {
		if !tally.ValidMetric(m) || n < 0 {
			errs = append(errs, fmt.Sprintf("QUOTA_DEFAULTS: %q needs a metric name matching ^[a-z0-9_]{1,64}$ and a limit >= 0", m))
		}
	}
	if err := c.UsageRules.Validate(); err != nil {
		errs = append(errs, "USAGE_RULES: "+tally.ErrorMessageOf(err))
	}
	if s := strings.ToUpper(c.SQLiteSync); s != "FULL" && s != "NORMAL" {
		errs = append(errs, "SQLITE_SYNCHRONOUS must be FULL or NORMAL")
	}
	if c.IngestQueue < 1 {
		errs = append(errs, "INGEST_QUEUE_SIZE must be positive")
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		errs = append(errs, "METRICS_TOKEN must be at least 16 characters")
	}
	if c.StatementTimeout < 10*time.Millisecond || c.StatementTimeout > time.Hour {
		errs = append(errs, "DB_STATEMENT_TIMEOUT must be 10ms-1h, like 5s")
	}
	if c.DrainDelay < 0 || c.DrainDelay > 10*time.Minute {
		errs = append(errs, "SHUTDOWN_DRAIN_DELAY must be 0-10m, like 5s")
	}
	if c.RedisTimeout < time.Millisecond || c.RedisTimeout > 10*time.Second {
		errs = append(errs, "REDIS_TIMEOUT must be 1ms-10s, like 50ms")
	}
	if c.Reconcile < time.Second || c.Reconcile > 24*time.Hour {
		errs = append(errs, "RECONCILE_INTERVAL must be 1s-24h, like 1m")
	}
	if c.AbsenceInterval < time.Second || c.AbsenceInterval > time.Hour {
		errs = append(errs, "ABSENCE_INTERVAL must be 1s-1h, like 1m")
	}
	if c.LabelCap < 1 {
		errs = append(errs, "METRICS_LABEL_CAP must be positive")
	}
	if c.RollupDailyAt < 0 || c.RollupDailyAt >= 24*time.Hour {
		errs = append(errs, "ROLLUP_DAILY_AT must be within the day, like 10m")
	}
	if c.SessionTTL < time.Minute {
		errs = append(errs, "SESSION_TTL must be at least 1m")
	}
	if c.LoginHashMemory < 1 {
		errs = append(errs, "LOGIN_HASH_MEMORY_MB must be positive (one password hash takes 19 MiB)")
	}
	if c.LoginFreeAddress < 1 || c.LoginFreeEmail < 1 {
		errs = append(errs, "LOGIN_FREE_FAILURES_PER_ADDRESS and LOGIN_FREE_FAILURES_PER_EMAIL must be positive")
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		errs = append(errs, "REDIS_URL must be a redis:// or rediss:// URL")
	}
	if len(errs) > 0 {
		return &configError{msg: "bad configuration: " + strings.Join(errs, "; ")}
	}
	return nil
}

// postgresURL returns DATABASE_URL when it selects PostgreSQL, else "".
func (c *config) postgresURL() string {
	if strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return c.DatabaseURL
	}
	return ""
}

// sqlitePath returns the SQLite file DATABASE_URL names.
func (c *config) sqlitePath() string {
	p := strings.TrimPrefix(strings.TrimPrefix(c.DatabaseURL, "sqlite://"), "sqlite:")
	return strings.TrimPrefix(p, "file:")
}

// redactURL hides a password in a URL for logging.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// LogValue logs the effective configuration with secrets redacted and
// durations as Go durations ("10m0s"), the way they are configured.
func (c config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen_addr", c.ListenAddr),
		slog.String("database_url", redactURL(c.DatabaseURL)),
		slog.String("events_url", redactURL(c.EventsURL)),
		slog.String("redis_url", redactURL(c.RedisURL)),
		slog.Bool("analytics_enabled", c.AnalyticsEnabled),
		slog.Int("max_export_rows", c.MaxExportRows),
		slog.Bool("quotas_enabled", c.QuotasEnabled),
		slog.Any("quota_defaults", c.QuotaDefaults),
		slog.String("registration", c.Registration),
		slog.Any("usage_rules", c.UsageRules),
		slog.String("sqlite_synchronous", c.SQLiteSync),
		slog.Int("ingest_queue_size", c.IngestQueue),
		slog.Duration("db_statement_timeout", c.StatementTimeout),
		slog.Duration("shutdown_drain_delay", c.DrainDelay),
		slog.Duration("redis_timeout", c.RedisTimeout),
		slog.Duration("reconcile_interval", c.Reconcile),
		slog.Int("metrics_label_cap", c.LabelCap),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.Bool("metrics_token_set", c.MetricsToken != ""),
		slog.String("rollup_daily_at", c.RollupDailyAt.String()),
		slog.String("session_ttl", c.SessionTTL.String()),
		slog.Int("login_hash_memory_mb", c.LoginHashMemory),
		slog.Int("login_free_failures_per_address", c.LoginFreeAddress),
		slog.Int("login_free_failures_per_email", c.LoginFreeEmail),
		slog.Bool("secure_cookies", c.SecureCookies),
		slog.Bool("webhook_allow_private", c.WebhookPrivate),
		slog.String("log_level", c.LogLevel.String()),
		slog.Bool("demo", c.Demo),
		slog.String("dev_dir", c.DevDir),
	)
}
