package e2e

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

type orderingProxy struct {
	srv  *httptest.Server
	hook atomic.Pointer[func(r *http.Request) func()]
}

func startOrderingProxy(t *testing.T, endpoint string) *orderingProxy {
	u, _ := url.Parse(endpoint)
	p := &orderingProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
		pr.Out.Host = pr.In.Host
	}, Transport: &http.Transport{Proxy: nil}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var after func()
		if h := p.hook.Load(); h != nil {
			after = (*h)(r)
		}
		rp.ServeHTTP(w, r)
		if after != nil {
			after()
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// TestReplicasSessionInterleave: two PATCHes of the same range of one session, with
// different bytes, sent at once to two replicas. Proxies in front of MinIO (one per replica)
// order the S3 writes so the session ends with replica 2's data (pending object) and replica
// 1's hash state (info): pending X < pending Y < info Y < info X. The saved hash state then
// claims sha256(X) for bytes that are Y: a PUT ?digest=sha256(X) must be refused, and no blob
// sha256(X) may hold anything but X.
func TestReplicasSessionInterleave(t *testing.T) {
	be := newSharedBackend(t)
	p1 := startOrderingProxy(t, be.S3.Endpoint)
	p2 := startOrderingProxy(t, be.S3.Endpoint)
	b1, b2 := be, be
	b1.S3.Endpoint, b2.S3.Endpoint = p1.srv.URL, p2.srv.URL
	r1 := startBerth(t, "--config", b1.configFile(t))
	r2 := startBerth(t, "--config", b2.configFile(t))
	c1, c2 := newClient(t, r1), newClient(t, r2)
	const repo = "e2e/race"
	loc := c1.startUpload(repo)
	id := path.Base(loc)

	r2Opened, pendXDone, infoYDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var o1, o2, o3 sync.Once
	h1 := func(r *http.Request) func() {
		p := r.URL.EscapedPath()
		switch {
		case r.Method == "PUT" && strings.Contains(p, "pending/uploads/"+id+"/data"):
			<-r2Opened
			return func() { o1.Do(func() { close(pendXDone) }) }
		case r.Method == "PUT" && strings.HasSuffix(p, "uploads/"+id+"/info"):
			<-infoYDone
		}
		return nil
	}
	h2 := func(r *http.Request) func() {
		p := r.URL.EscapedPath()
		switch {
		case r.Method == "HEAD" && strings.HasSuffix(p, "uploads/"+id+"/data"):
			return func() { o2.Do(func() { close(r2Opened) }) }
		case r.Method == "PUT" && strings.Contains(p, "pending/uploads/"+id+"/data"):
			<-pendXDone
		case r.Method == "PUT" && strings.HasSuffix(p, "uploads/"+id+"/info"):
			return func() { o3.Do(func() { close(infoYDone) }) }
		}
		return nil
	}
	p1.hook.Store(&h1)
	p2.hook.Store(&h2)

	x := bytes.Repeat([]byte("x"), 1000)
	y := bytes.Repeat([]byte("y"), 1000)
	res := make(chan int, 2)
	send := func(c *regClient, data []byte) {
		req, _ := http.NewRequest("PATCH", c.resolve(loc).String(), bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", "0-999")
		resp, err := c.hc.Do(req)
		if err != nil {
			res <- -1
			return
		}
		resp.Body.Close()
		res <- resp.StatusCode
	}
	go send(c1, x)
	go send(c2, y)
	t.Logf("PATCH statuses: %d %d", <-res, <-res)
	p1.hook.Store(nil)
	p2.hook.Store(nil)

	dx := sha256Digest(x)
	r := c2.request("PUT", c2.withQuery(loc, "digest", dx), nil)
	t.Logf("PUT ?digest=sha256(x): %d", r.Status)
	got := c1.request("GET", "/v2/"+repo+"/blobs/"+dx, nil)
	switch {
	case r.Status == http.StatusCreated && sha256Digest(got.Body) != dx:
		t.Errorf("blob %s is served with content %q...", dx, got.Body[:min(10, len(got.Body))])
	case r.Status != http.StatusCreated && got.Status != http.StatusNotFound:
		t.Errorf("PUT was refused with %d, yet GET of the blob answers %d", r.Status, got.Status)
	}
}
