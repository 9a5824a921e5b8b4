package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/connector/provider"
)

func TestStatusViewMapsProviderRateLimitAndSync(t *testing.T) {
	end := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	v := statusView(connector.Status{
		Name: "hub", Provider: "dockerhub",
		RateLimit: &provider.RateLimit{Limit: 100, Remaining: 42},
		Sync:      &connector.SyncStatus{LastEnd: &end, LastResult: "ok", Tags: 7, Failed: 1},
	})
	if v.Provider != "dockerhub" {
		t.Errorf("provider = %q", v.Provider)
	}
	if !v.HasRateLimit || v.RateLimitRemaining != 42 || v.RateLimit != 100 {
		t.Errorf("rate limit = %v %d of %d", v.HasRateLimit, v.RateLimitRemaining, v.RateLimit)
	}
	if !strings.HasPrefix(v.SyncStatus, "ok") || !strings.Contains(v.SyncStatus, "7 tags") || v.SyncAt == nil || !v.SyncAt.Equal(end) {
		t.Errorf("sync = %q at %v", v.SyncStatus, v.SyncAt)
	}

	running := statusView(connector.Status{Sync: &connector.SyncStatus{Running: true, Done: 3, Total: 9}})
	if !strings.Contains(running.SyncStatus, "3 of 9") {
		t.Errorf("running sync = %q", running.SyncStatus)
	}
	plain := statusView(connector.Status{Name: "mirror"})
	if plain.HasRateLimit || plain.SyncStatus != "" {
		t.Errorf("a cache without rate limit or sync shows %+v", plain)
	}
}
