package tally

import "strings"

// tally's own activity — calls to its API, logins to its dashboard, new
// tenants — is recorded in the tenant's log as events of its own: names
// under OwnEventPrefix, source OwnSource, no user id (the account, as
// "user:ID", is in props.account, so a person who is also one of the
// host app's users is not counted twice). They are kept apart from the
// host app's events: the event list, export and live tail leave them out
// unless asked for by source or name, and usage rules, meters, KPIs and
// absence alerts see them only where a pattern names them (ExcludesOwn).
const (
	// OwnEventPrefix starts the name of every event of tally's own;
	// ingestion refuses it in the events clients send.
	OwnEventPrefix = "tally."
	// OwnSource is the source of tally's own events.
	OwnSource = "tally"
	// OwnAccountProp is the props key of the tally account an own event
	// is about ("user:ID").
	OwnAccountProp = "account"
)

// The events of tally's own activity.
const (
	EventOwnAPIRequest    = "tally.api.request"    // a call to tally's API with an API key
	EventOwnRegister      = "tally.auth.register"  // a tally account registered
	EventOwnLogin         = "tally.auth.login"     // a login to tally's dashboard or API
	EventOwnTenantCreated = "tally.tenant.created" // a tenant created
)

// IsOwnEvent reports whether an event name is one of tally's own.
func IsOwnEvent(name string) bool { return strings.HasPrefix(name, OwnEventPrefix) }

// ownEventsEnd is the smallest name after every name under
// OwnEventPrefix ("." + 1 is "/").
const ownEventsEnd = "tally/"

// OwnEventRange returns the bounds of the names of tally's own events:
// every name n with lo <= n < hi, in byte order.
func OwnEventRange() (lo, hi string) { return OwnEventPrefix, ownEventsEnd }

// ExcludesOwn reports whether a selection of events by the name pattern p
// (an exact name, a prefix ending in "*", or "" or "*" for every name)
// and source (empty: any) leaves tally's own events out even though p
// could match them: true for every pattern that could match a name under
// "tally." without naming that prefix ("", "*", "t*", "tally*"), unless
// source is OwnSource. Stores add the exclusion to their queries only then.
func ExcludesOwn(p, source string) bool {
	if source == OwnSource {
		return false
	}
	prefix, ok := strings.CutSuffix(p, "*")
	if !ok {
		return p == ""
	}
	return strings.HasPrefix(OwnEventPrefix, prefix) && prefix != OwnEventPrefix
}

// SelectsEvent reports whether the pattern p (see ExcludesOwn) selects the
// event name n: MatchName, except that tally's own events are selected only
// by a pattern that names them.
func SelectsEvent(p, n string) bool {
	return MatchName(p, n) && !(IsOwnEvent(n) && ExcludesOwn(p, ""))
}
