// Package notifications sends webhooks: for every push, pull, delete and
// mount, an event in the envelope of distribution's registry
// (application/vnd.docker.distribution.events.v1+json, {"events":[…]}),
// POSTed to the configured endpoints, so consumers written for
// distribution work with berth as they are.
//
// # Delivery
//
// Events are durable. The event of a change (push, delete, mount) is
// queued in the metadata store in the transaction of the change itself
// (metadata.WithEvents), so it exists if and only if the change was
// committed, and survives any crash after that. Pulls change nothing
// stored: their events are gathered for a moment and queued in batches
// (a crash loses at most the pull events of the last fraction of a
// second).
//
// Each endpoint has a delivery loop in every berth process. It claims the
// endpoint's oldest events with a lease (replicas sharing a PostgreSQL
// database take different events: FOR UPDATE SKIP LOCKED), POSTs them and
// deletes them once the endpoint answered 2xx. Any other answer, or none
// within the timeout, makes the events due again after a backoff that
// doubles up to its maximum; they are retried until the endpoint takes
// them, across restarts. An event is sent by one process at a time; only
// a process that dies between the endpoint's answer and the delete leaves
// an event to be sent again, with the same id, once its lease ran out.
//
// With a secret, each request carries X-Berth-Signature: sha256=HEX, the
// HMAC-SHA256 of the body (Verify checks it as a consumer would).
package notifications

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/berthhq/berth/internal/glob"
	"github.com/berthhq/berth/metadata"
	"github.com/berthhq/berth/registry"
)

// Metrics receives what deliveries do; internal/metrics implements it.
type Metrics interface {
	// Delivered counts events an endpoint took.
	Delivered(endpoint string, events int)
	// Failed counts failed deliveries of events.
	Failed(endpoint string, events int)
	// Dropped counts events dropped: pull events the queue could not
	// keep up with, and the oldest events of a failing endpoint beyond its
	// maxPending.
	Dropped(events int)
}

// Options tune a Notifier.
type Options struct {
	// Addr is the address berth listens on, for the events' source.
	Addr string
	// Logger receives failures (warn) and deliveries (debug).
	Logger *slog.Logger
	// Metrics, when set, counts deliveries.
	Metrics Metrics
	// Transport sends the requests (default: a clone of
	// http.DefaultTransport).
	Transport http.RoundTripper
	// UserAgent of the requests.
	UserAgent string
	// PollInterval is how often an idle loop looks for events queued by
	// other processes (default 1s).
	PollInterval time.Duration
}

// Notifier builds the events of requests (registry.Notifier) and delivers
// them (Run).
type Notifier struct {
	queue     metadata.EventQueue
	endpoints []*endpoint
	source    Source
	log       *slog.Logger
	metrics   Metrics
	poll      time.Duration
	ua        string

	pulls chan metadata.Event
	wake  chan struct{}

	recent recent // the last deliveries, for Recent
}

// endpoint is a configured endpoint, compiled.
type endpoint struct {
	Endpoint
	actions map[string]bool // nil: all
	repos   []*glob.Pattern // nil: all
	secret  []byte
	client  *http.Client
	wake    chan struct{}
}

func (e *endpoint) wants(a registry.Action) bool {
	if e.actions != nil && !e.actions[a.Kind] {
		return false
	}
	if e.repos == nil {
		return true
	}
	for _, g := range e.repos {
		if g.Match(a.Repository) {
			return true
		}
	}
	return false
}

// pullBuffer bounds the pull events waiting to be queued.
const pullBuffer = 4096

// New returns a Notifier for cfg (validated here) queueing events in
// queue. It sends nothing until Run.
func New(cfg Config, queue metadata.EventQueue, opts Options) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if queue == nil {
		return nil, errors.New("notifications: the metadata store cannot queue events")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "berth"
	}
	tr := opts.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	host, _ := os.Hostname()
	addr := opts.Addr
	if h, port, ok := strings.Cut(addr, ":"); ok && (h == "" || h == "0.0.0.0" || h == "::" || h == "[::]") && host != "" {
		addr = host + ":" + port
	}
	n := &Notifier{
		queue:   queue,
		source:  Source{Addr: addr, InstanceID: uuid.NewString()},
		log:     opts.Logger,
		metrics: opts.Metrics,
		poll:    opts.PollInterval,
		ua:      opts.UserAgent,
		pulls:   make(chan metadata.Event, pullBuffer),
	}
	for _, c := range cfg.Endpoints {
		c = c.withDefaults()
		e := &endpoint{Endpoint: c, wake: make(chan struct{}, 1)}
		if len(c.Events) > 0 {
			e.actions = map[string]bool{}
			for _, a := range c.Events {
				e.actions[a] = true
			}
		}
		for _, p := range c.Repositories {
			e.repos = append(e.repos, glob.MustCompile(p))
		}
		secret, err := c.secret()
		if err != nil {
			return nil, fmt.Errorf("notifications: %w", err)
		}
		e.secret = secret
		e.client = &http.Client{
			Transport: tr,
			Timeout:   c.Timeout,
			// A redirect is no answer: the events stay queued, and the
			// operator fixes the URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		n.endpoints = append(n.endpoints, e)
	}
	return n, nil
}

// InstanceID identifies this process in events and in the queue's leases.
func (n *Notifier) InstanceID() string { return n.source.InstanceID }

// Endpoints returns the names of the configured endpoints.
func (n *Notifier) Endpoints() []string {
	out := make([]string, len(n.endpoints))
	for i, e := range n.endpoints {
		out[i] = e.Name
	}
	return out
}

// event builds the event of a.
func (n *Notifier) event(r *http.Request, a registry.Action) Event {
	ev := Event{
		ID:        uuid.NewString(),
		Timestamp: time.Now().UTC(),
		Action:    a.Kind,
		Target: Target{
			MediaType:      a.MediaType,
			Size:           a.Size,
			Digest:         a.Digest,
			Length:         a.Size,
			Repository:     a.Repository,
			FromRepository: a.From,
			Tag:            a.Tag,
		},
		Request: Request{
			ID:        registry.RequestID(r.Context()),
			Addr:      r.RemoteAddr,
			Host:      r.Host,
			Method:    r.Method,
			UserAgent: r.UserAgent(),
		},
		Actor:  Actor{Name: registry.User(r.Context())},
		Source: n.source,
	}
	if a.Digest != "" && a.Kind != registry.ActionDelete {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		kind := "blobs"
		if a.MediaType != "" && a.MediaType != "application/octet-stream" {
			kind = "manifests"
		}
		ev.Target.URL = scheme + "://" + r.Host + "/v2/" + a.Repository + "/" + kind + "/" + a.Digest.String()
	}
	return ev
}

// rows returns the queue rows of a: one per endpoint that wants it.
func (n *Notifier) rows(r *http.Request, a registry.Action) []metadata.Event {
	var out []metadata.Event
	var payload []byte
	for _, e := range n.endpoints {
		if !e.wants(a) {
			continue
		}
		if payload == nil {
			var err error
			if payload, err = json.Marshal(n.event(r, a)); err != nil {
				n.log.Error("notifications: encoding an event", "err", err)
				return nil
			}
		}
		out = append(out, metadata.Event{Endpoint: e.Name, Payload: payload})
	}
	return out
}

// Prepare implements registry.Notifier: the events of a go into ctx, for
// the write to queue in its transaction.
func (n *Notifier) Prepare(ctx context.Context, r *http.Request, a registry.Action) context.Context {
	rows := n.rows(r, a)
	if len(rows) == 0 {
		return ctx
	}
	// The write commits soon after: look then rather than at the next
	// poll (a loop that finds nothing yet looks again after a moment).
	n.wakeAll(rows)
	return metadata.WithEvents(ctx, rows...)
}

// Pulled implements registry.Notifier: pull events are queued in
// batches, apart from the request.
func (n *Notifier) Pulled(r *http.Request, a registry.Action) {
	for _, row := range n.rows(r, a) {
		select {
		case n.pulls <- row:
		default:
			if n.metrics != nil {
				n.metrics.Dropped(1)
			}
			n.log.Warn("notifications: pull event dropped, the queue does not keep up", "endpoint", row.Endpoint)
		}
	}
}

func (n *Notifier) wakeAll(rows []metadata.Event) {
	for _, e := range n.endpoints {
		for _, row := range rows {
			if row.Endpoint == e.Name {
				select {
				case e.wake <- struct{}{}:
				default:
				}
				break
			}
		}
	}
}

// Run delivers events until ctx ends: one loop per endpoint, and the
// batching of pull events. Events queued for endpoints no longer
// configured are dropped first, with a warning. When ctx ends, the pull
// events still waiting are queued and the leases this process holds are
// given back, so another process (or the next start) sends them.
func (n *Notifier) Run(ctx context.Context) {
	n.dropUnknown(ctx)
	var wg sync.WaitGroup
	for _, e := range n.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.deliver(ctx, e)
		}()
	}
	n.batchPulls(ctx)
	wg.Wait()
	release, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := n.queue.ReleaseEvents(release, n.source.InstanceID); err != nil {
		n.log.Warn("notifications: giving back leases", "err", err)
	}
}

// dropUnknown drops the events of endpoints that are not configured any
// more: nothing would ever send them.
func (n *Notifier) dropUnknown(ctx context.Context) {
	pending, err := n.queue.PendingEvents(ctx)
	if err != nil {
		n.log.Warn("notifications: reading the queue", "err", err)
		return
	}
	for name, count := range pending {
		if contains(n.Endpoints(), name) {
			continue
		}
		dropped, err := n.queue.DropEvents(ctx, name)
		if err != nil {
			n.log.Warn("notifications: dropping the events of a removed endpoint", "endpoint", name, "err", err)
			continue
		}
		n.log.Warn("notifications: dropped the events of an endpoint no longer configured", "endpoint", name, "events", dropped, "pending", count)
	}
}

// Batches of pull events: queued once this many are waiting, or this long
// after the first.
const (
	pullBatch = 256
	pullDelay = 100 * time.Millisecond
)

// batchPulls queues pull events in batches until ctx ends, then queues
// what is left.
func (n *Notifier) batchPulls(ctx context.Context) {
	var batch []metadata.Event
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		if err := n.queue.EnqueueEvents(ctx, batch...); err != nil {
			if n.metrics != nil {
				n.metrics.Dropped(len(batch))
			}
			n.log.Warn("notifications: queueing pull events failed; they are dropped", "events", len(batch), "err", err)
		} else {
			n.wakeAll(batch)
		}
		batch = batch[:0]
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		drain:
			for {
				select {
				case ev := <-n.pulls:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
			flush(last)
			cancel()
			return
		case ev := <-n.pulls:
			if len(batch) == 0 {
				timer.Reset(pullDelay)
			}
			batch = append(batch, ev)
			if len(batch) >= pullBatch {
				timer.Stop()
				flush(ctx)
			}
		case <-timer.C:
			flush(ctx)
		}
	}
}

// wakeDelay is how long a loop woken by a write waits for it to commit.
const wakeDelay = 20 * time.Millisecond

// deliver is the delivery loop of endpoint e.
func (n *Notifier) deliver(ctx context.Context, e *endpoint) {
	// A claim outlives the request it is for, so a slow endpoint's events
	// are not claimed twice.
	lease := e.Timeout + 10*time.Second
	backoff := time.Duration(0)
	for {
		wait := n.poll
		evs, err := n.queue.ClaimEvents(ctx, e.Name, n.source.InstanceID, e.MaxEvents, lease)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			n.log.Warn("notifications: claiming events", "endpoint", e.Name, "err", err)
		case len(evs) > 0:
			// A delivery under way is finished, not cut, when berth stops
			// (the client's timeout bounds it): cutting it after the
			// endpoint took the events would send them again.
			if err := n.send(context.WithoutCancel(ctx), e, evs); err != nil {
				if ctx.Err() != nil {
					n.giveBack(ctx, e, evs, 0, err.Error())
					return
				}
				backoff = min(max(2*backoff, e.Backoff), e.MaxBackoff)
				n.giveBack(ctx, e, evs, backoff, err.Error())
				n.trim(ctx, e)
				wait = backoff
				break
			}
			backoff = 0
			continue // more may be due
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-e.wake:
			// Woken by a write about to commit: give it a moment. While
			// failing, new events wait for the backoff too.
			if backoff == 0 {
				t.Reset(wakeDelay)
			}
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// trim drops the oldest events of e beyond e.MaxPending, after a failed
// delivery: the queue of an endpoint that keeps failing stays bounded.
func (n *Notifier) trim(ctx context.Context, e *endpoint) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	dropped, err := n.queue.TrimEvents(ctx, e.Name, e.MaxPending)
	if err != nil {
		n.log.Warn("notifications: bounding the queue", "endpoint", e.Name, "err", err)
		return
	}
	if dropped == 0 {
		return
	}
	if n.metrics != nil {
		n.metrics.Dropped(int(dropped))
	}
	n.log.Warn("notifications: dropped the oldest events of an endpoint that keeps failing", "endpoint", e.Name,
		"events", dropped, "maxPending", e.MaxPending)
}

// giveBack makes evs due again after delay.
func (n *Notifier) giveBack(ctx context.Context, e *endpoint, evs []metadata.QueuedEvent, delay time.Duration, reason string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := n.queue.RetryEvents(ctx, n.source.InstanceID, ids(evs), delay, reason); err != nil {
		n.log.Warn("notifications: giving back events", "endpoint", e.Name, "err", err)
	}
}

func ids(evs []metadata.QueuedEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

// send POSTs evs to e and, when it answers 2xx, removes them from the
// queue.
func (n *Notifier) send(ctx context.Context, e *endpoint, evs []metadata.QueuedEvent) error {
	payloads := make([][]byte, len(evs))
	for i, ev := range evs {
		payloads[i] = ev.Payload
	}
	body, err := envelope(payloads)
	if err != nil {
		// Never deliverable: dropping them lets the others through.
		n.log.Error("notifications: dropping events that are not JSON", "endpoint", e.Name, "events", len(evs), "err", err)
		return n.queue.CompleteEvents(ctx, n.source.InstanceID, ids(evs))
	}
	if err := n.post(ctx, e, body); err != nil {
		n.record(e.Name, evs, err)
		if n.metrics != nil {
			n.metrics.Failed(e.Name, len(evs))
		}
		if ctx.Err() == nil {
			n.log.Warn("notifications: delivery failed; retrying later", "endpoint", e.Name, "events", len(evs),
				"attempt", evs[0].Attempts, "err", err)
		}
		return err
	}
	n.record(e.Name, evs, nil)
	if n.metrics != nil {
		n.metrics.Delivered(e.Name, len(evs))
	}
	n.log.Debug("notifications: delivered", "endpoint", e.Name, "events", len(evs))
	done, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := n.queue.CompleteEvents(done, n.source.InstanceID, ids(evs)); err != nil {
		// They are sent again once the lease ends; their ids let the
		// consumer tell.
		n.log.Warn("notifications: recording a delivery failed; the events will be sent again", "endpoint", e.Name, "err", err)
	}
	return nil
}

// maxAnswer bounds what is read of an endpoint's answer.
const maxAnswer = 64 << 10

// post sends one body to e.
func (n *Notifier) post(ctx context.Context, e *endpoint, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	for k, vs := range e.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", MediaType)
	req.Header.Set("User-Agent", n.ua)
	if len(e.secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(e.secret, body))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return redactURL(err)
	}
	defer resp.Body.Close()
	_, _ = readSome(resp)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the endpoint answered %s", resp.Status)
	}
	return nil
}

// readSome reads what is left of an answer, up to a bound, so that the
// connection can be reused.
func readSome(resp *http.Response) (int64, error) {
	return io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
}

// redactURL keeps the endpoint's URL out of an error's text, apart from
// its scheme and host: its path or query may hold a credential, and the
// error goes to the log and the queue.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			return fmt.Errorf("%s %s://%s: %w", ue.Op, u.Scheme, u.Host, ue.Err)
		}
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
