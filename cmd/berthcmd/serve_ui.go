package berthcmd

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/berthhq/berth/auth"
	"github.com/berthhq/berth/config"
	"github.com/berthhq/berth/connector"
	"github.com/berthhq/berth/gc"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
	"github.com/berthhq/berth/ui"
)

// uiSessionKey is the web UI's session key file in the data directory.
const uiSessionKey = "ui-session.key"

// mountUI returns next with the web UI beside it under /ui/. The UI reads
// through the registry's resolver and metadata, and sends deletes to the
// registry itself (reg, inside the gate) as the signed-in person.
func mountUI(cfg config.Config, log *slog.Logger, next http.Handler, reg *registry.Registry, meta metadata.Store,
	conn *connector.Connector, gate *auth.Gate, sched *gc.Scheduler, ops *operations) (http.Handler, error) {
	key, err := ui.LoadOrCreateKey(filepath.Join(cfg.Data, uiSessionKey))
	if err != nil {
		return nil, err
	}
	opts := ui.Options{
		Resolver: conn, Meta: meta, Blobs: reg, API: reg, Gate: gate, SessionKey: key,
		Connectors: conn, LastGC: meta.LastGC, GCInterval: cfg.GC.Interval, Logger: log,
	}
	if sched != nil {
		opts.GCRuns = sched.Recent
	}
	if ops != nil && ops.notifier != nil {
		n := ops.notifier
		opts.WebhookDeliveries = func(_ context.Context, limit int) ([]ui.WebhookDelivery, error) {
			ds := n.Recent(limit)
			out := make([]ui.WebhookDelivery, len(ds))
			for i, d := range ds {
				status := "delivered"
				if !d.Delivered {
					status = "failed"
				}
				out[i] = ui.WebhookDelivery{Webhook: d.Endpoint, Event: d.Action, Repository: d.Repository,
					Status: status, Attempts: d.Attempts, At: d.At, Error: d.Error}
			}
			return out, nil
		}
	}
	u, err := ui.New(opts)
	if err != nil {
		return nil, err
	}
	return ui.Mount(u, next), nil
}
