package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// acked is the event ids each key's tenant acknowledged (2xx) during the
// bench's ingest phases, so that afterwards the bench can check that the
// server stored every one of them exactly once.
type acked struct {
	mu    sync.Mutex
	byKey []map[string]struct{}
	n     int
}

func newAcked(keys int) *acked {
	a := &acked{byKey: make([]map[string]struct{}, keys)}
	for i := range a.byKey {
		a.byKey[i] = map[string]struct{}{}
	}
	return a
}

func (a *acked) add(key int, ids []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, id := range ids {
		a.byKey[key][id] = struct{}{}
	}
	a.n += len(ids)
}

// verifyResult is what the check after the phases found.
type verifyResult struct {
	Acknowledged int64 `json:"acknowledged"`
	StoredOnce   int64 `json:"stored_once"`
	Missing      int64 `json:"missing"`
	StoredTwice  int64 `json:"stored_more_than_once"`
	Read         int64 `json:"events_read"`
}

// verify lists each key's events received since since through the
// event list (GET /api/analytics/events, pages of 1000, analytics:read)
// and counts how often each acknowledged id is there. An acknowledged id
// that was also sent again would count twice in acked.n: the bench's ids
// are random, so n is the number of acknowledgements.
func (a *acked) verify(ctx context.Context, client *http.Client, base string, keys []string, since time.Time) (*verifyResult, error) {
	res := &verifyResult{Acknowledged: int64(a.n)}
	for i, key := range keys {
		seen := make(map[string]int, len(a.byKey[i]))
		q := url.Values{"from": {since.UTC().Format(time.RFC3339Nano)}, "to": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano)},
			"limit": {"1000"}}
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/analytics/events?"+q.Encode(), nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			var page struct {
				Events []struct {
					EventID string `json:"event_id"`
				} `json:"events"`
				NextCursor *string `json:"next_cursor"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("GET /api/analytics/events: %s (the keys need analytics:read to verify; -verify=false skips it)", resp.Status)
			}
			if err != nil {
				return nil, fmt.Errorf("GET /api/analytics/events: %w", err)
			}
			for _, e := range page.Events {
				res.Read++
				if _, ok := a.byKey[i][e.EventID]; ok {
					seen[e.EventID]++
				}
			}
			if page.NextCursor == nil {
				break
			}
			q.Set("cursor", *page.NextCursor)
		}
		for id := range a.byKey[i] {
			switch seen[id] {
			case 0:
				res.Missing++
			case 1:
				res.StoredOnce++
			default:
				res.StoredTwice++
			}
		}
	}
	return res, nil
}

func (v *verifyResult) String() string {
	return fmt.Sprintf("%d acknowledged events: %d stored once, %d missing, %d stored more than once (%d events read back)",
		v.Acknowledged, v.StoredOnce, v.Missing, v.StoredTwice, v.Read)
}

// ok reports whether every acknowledged event is stored once.
func (v *verifyResult) ok() bool {
	return v.Missing == 0 && v.StoredTwice == 0 && v.StoredOnce == v.Acknowledged
}
