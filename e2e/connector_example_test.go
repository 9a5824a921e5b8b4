package e2e

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/berthhq/berth/connector"
)

// exampleUpstream is the upstream address examples/connectors.yaml names.
const exampleUpstream = "127.0.0.1:5001"

// connectorsExample returns examples/connectors.yaml with its upstream moved to upstream.
func connectorsExample(t testing.TB, upstream string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(suite.root, "examples", "connectors.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("http://"+exampleUpstream)) {
		t.Fatalf("examples/connectors.yaml does not name its upstream http://%s", exampleUpstream)
	}
	return bytes.ReplaceAll(raw, []byte(exampleUpstream), []byte(upstream))
}

// checkConnectorsExample drives a berth serving examples/connectors.yaml in front of up
// (the upstream registry): hub/ is the upstream's content, all/ is local/ then hub/ and
// takes pushes into local/, other names are hosted.
func checkConnectorsExample(t *testing.T, b, up *regClient) {
	t.Helper()
	fromUp, pushed, hosted := newImage(t, "linux", "amd64", 2), newImage(t, "linux", "amd64", 1), newImage(t, "linux", "amd64", 1)
	up.pushImage("team/app", "v1", fromUp)

	b.checkImage("hub/team/app", fromUp)
	if _, _, d := b.manifest("hub/team/app", "v1"); d != fromUp.Manifest.Digest() {
		t.Errorf("hub/team/app:v1 is %s, want the upstream's %s", d, fromUp.Manifest.Digest())
	}
	if _, _, d := b.manifest("all/team/app", "v1"); d != fromUp.Manifest.Digest() {
		t.Errorf("all/team/app:v1 is %s, want hub's %s", d, fromUp.Manifest.Digest())
	}
	// Pushes to all/ land in local/, which all/ reads first.
	b.pushImage("all/team/app", "v2", pushed)
	b.checkImage("local/team/app", pushed)
	b.pushImage("local/team/app", "v1", hosted)
	if _, _, d := b.manifest("all/team/app", "v1"); d != hosted.Manifest.Digest() {
		t.Errorf("all/team/app:v1 is %s, want local's %s (local/ comes first)", d, hosted.Manifest.Digest())
	}
	if st := up.manifestStatus("team/app", "v2"); st != http.StatusNotFound {
		t.Errorf("a push to all/ reached the upstream (%d)", st)
	}
	if got := b.tags("all/team/app"); !equalSorted(got, []string{"v1", "v2"}) {
		t.Errorf("all/team/app tags %v", got)
	}
	// Names outside the three prefixes are hosted.
	b.pushImage("misc/tool", "1", pushed)
	b.checkImage("misc/tool", pushed)
	r := b.expect(b.request("GET", connector.HealthPath, nil), http.StatusOK)
	if !strings.Contains(string(r.Body), `"name":"hub"`) || !strings.Contains(string(r.Body), `"state":"up"`) {
		t.Errorf("health: %s", r.Body)
	}
}

// TestConnectorExample serves examples/connectors.yaml's registries (only the upstream's
// address changed) in front of another berth.
func TestConnectorExample(t *testing.T) {
	t.Parallel()
	up := startBerth(t)
	var doc struct {
		Registries connector.Config `yaml:"registries"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(connectorsExample(t, up.Addr)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("examples/connectors.yaml: %v", err)
	}
	b := startConnectorBerth(t, doc.Registries)
	checkConnectorsExample(t, b.client(t), newClient(t, up))
}
