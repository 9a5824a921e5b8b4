package notifications

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/berthhq/berth/metadata"
)

// recentDeliveries bounds how many delivery outcomes a Notifier keeps in
// memory for Recent.
const recentDeliveries = 200

// Delivery is the outcome of one attempt to deliver one event.
type Delivery struct {
	Endpoint   string
	Action     string
	Repository string
	// Delivered reports that the endpoint took the event; otherwise
	// Error says why not, and the event is retried.
	Delivered bool
	// Attempts counts the attempts to deliver the event, this one
	// included.
	Attempts int
	At       time.Time
	Error    string
}

// recent is a ring of the last deliveries of this process.
type recent struct {
	mu   sync.Mutex
	ring []Delivery
	next int // where the next one goes, once the ring is full
}

func (r *recent) add(ds []Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range ds {
		if len(r.ring) < recentDeliveries {
			r.ring = append(r.ring, d)
			continue
		}
		r.ring[r.next] = d
		r.next = (r.next + 1) % recentDeliveries
	}
}

// Recent returns up to limit of the last deliveries this process attempted,
// newest first. Deliveries of other replicas are theirs.
func (n *Notifier) Recent(limit int) []Delivery {
	r := &n.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Delivery, 0, min(limit, len(r.ring)))
	for i := 0; i < len(r.ring) && len(out) < limit; i++ {
		// Newest first: the one before next, backwards (next stays 0
		// until the ring is full).
		j := (r.next - 1 - i + 2*len(r.ring)) % len(r.ring)
		out = append(out, r.ring[j])
	}
	return out
}

// record keeps the outcome of sending evs to endpoint.
func (n *Notifier) record(endpoint string, evs []metadata.QueuedEvent, err error) {
	at := time.Now()
	msg := ""
	if err != nil {
		msg = redactURL(err).Error() // not the URL's path or query, which may carry a token
	}
	ds := make([]Delivery, len(evs))
	for i, ev := range evs {
		// Only what the page shows is read of the payload, which berth
		// wrote itself.
		var p struct {
			Action string `json:"action"`
			Target struct {
				Repository string `json:"repository"`
			} `json:"target"`
		}
		_ = json.Unmarshal(ev.Payload, &p)
		ds[i] = Delivery{Endpoint: endpoint, Action: p.Action, Repository: p.Target.Repository,
			Delivered: err == nil, Attempts: ev.Attempts, At: at}
		if err != nil {
			ds[i].Error = msg
		}
	}
	n.recent.add(ds)
}
