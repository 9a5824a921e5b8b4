package connector

import (
	"io"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkWarmPull compares a warm pull through a cache (everything
// already fetched, tags within their TTL) with a pull of hosted content
// from the same server: the cache should cost next to nothing.
func BenchmarkWarmPull(b *testing.B) {
	up := newNode(b, nil, nodeOptions{}, nil)
	im := newImage(b, 4<<10, 64<<10)
	up.push("app", "v1", im)
	n := newNode(b, Config{cacheOf("hub", "hub/", up.url()), {Name: "local", Type: TypeHosted, Prefix: "local/"}}, nodeOptions{}, nil)
	n.push("local/app", "v1", im)
	n.pull("hub/app", "v1", im)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	get := func(b *testing.B, path string) {
		req, _ := http.NewRequest("GET", n.url()+path, nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		res, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d", path, res.StatusCode)
		}
	}
	for _, name := range []string{"local/app", "hub/app"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				get(b, "/v2/"+name+"/manifests/v1")
				get(b, "/v2/"+name+"/manifests/"+im.digest.String())
				for _, bl := range im.blobs() {
					get(b, "/v2/"+name+"/blobs/"+digest.FromBytes(bl).String())
				}
			}
		})
	}
}
