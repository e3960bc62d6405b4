// Package tally is the domain vocabulary of tally, multi-tenant analytics and
// usage tracking for SaaS platforms: events, tenants, users, API keys, roles,
// scopes, quotas and usage rules, the typed errors every layer speaks, and the
// store interfaces that each storage backend (sqlite, postgres) implements.
//
// The package imports nothing but the standard library. Every store method
// that reads or writes tenant data takes the tenant explicitly; methods that
// look across tenants say so in their names.
package tally
