package notifications

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/berthhq/berth/metadata"
)

func TestRecentKeepsTheLastDeliveriesNewestFirst(t *testing.T) {
	n := &Notifier{}
	if got := n.Recent(10); len(got) != 0 {
		t.Fatalf("a new notifier has deliveries: %v", got)
	}
	ev := func(i int) metadata.QueuedEvent {
		return metadata.QueuedEvent{ID: int64(i), Attempts: 1,
			Event: metadata.Event{Payload: []byte(fmt.Sprintf(`{"action":"push","target":{"repository":"app/%d"}}`, i))}}
	}
	n.record("ci", []metadata.QueuedEvent{ev(0), ev(1)}, nil)
	got := n.Recent(10)
	if len(got) != 2 || got[0].Repository != "app/1" || got[1].Repository != "app/0" || !got[0].Delivered || got[0].Action != "push" {
		t.Fatalf("Recent = %+v", got)
	}
	for i := 2; i < recentDeliveries+50; i++ {
		n.record("ci", []metadata.QueuedEvent{ev(i)}, nil)
	}
	got = n.Recent(recentDeliveries + 10)
	if len(got) != recentDeliveries {
		t.Fatalf("kept %d deliveries, want the bound %d", len(got), recentDeliveries)
	}
	last := recentDeliveries + 49
	if got[0].Repository != fmt.Sprintf("app/%d", last) || got[len(got)-1].Repository != fmt.Sprintf("app/%d", last-recentDeliveries+1) {
		t.Errorf("newest %s, oldest %s", got[0].Repository, got[len(got)-1].Repository)
	}
	if got := n.Recent(3); len(got) != 3 || got[0].Repository != fmt.Sprintf("app/%d", last) {
		t.Errorf("Recent(3) = %+v", got)
	}

	err := &url.Error{Op: "Post", URL: "https://hooks.example/x?token=secret", Err: errors.New("connection refused")}
	n.record("ci", []metadata.QueuedEvent{ev(7)}, err)
	d := n.Recent(1)[0]
	if d.Delivered || !strings.HasSuffix(d.Error, "connection refused") || strings.Contains(d.Error, "token") || strings.Contains(d.Error, "/x") {
		t.Errorf("failed delivery recorded as %+v (the URL's path and token stay out)", d)
	}
}
