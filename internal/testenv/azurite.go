package testenv

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// Azurite is an empty container on Azurite, Microsoft's emulator of Azure
// Blob Storage, with what a client needs to reach it.
type Azurite struct {
	// Endpoint is the account's URL, "http://127.0.0.1:PORT/ACCOUNT".
	Endpoint    string
	AccountName string
	AccountKey  string
	Container   string
}

// Azurite's well-known development account.
const (
	azuriteAccount = "devstoreaccount1"
	azuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// StartAzurite returns a new, empty container on an Azurite blob server.
// The container and its blobs are removed when tb ends.
//
// The first call starts a server private to the test binary: azurite-blob
// found on PATH, else in $PEERS_NPM/node_modules/.bin or
// ~/.cache/registry-peers/npm/node_modules/.bin (where
// ../shared/tools/install-azurite.sh puts it), keeping its data in a
// temporary directory. Later calls share it and get a container each.
// Without it the test is skipped, except in CI (CI=true), where it fails.
func StartAzurite(tb testing.TB) Azurite {
	tb.Helper()
	srv, err := sharedAzurite()
	emulatorOrSkip(tb, "Azurite", err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	container := fmt.Sprintf("test-%d", srv.nextContainer.Add(1))
	if _, err := srv.client.CreateContainer(ctx, container, nil); err != nil {
		tb.Fatalf("create container %s: %v", container, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := srv.client.DeleteContainer(ctx, container, nil); err != nil {
			tb.Errorf("remove container %s: %v", container, err)
		}
	})
	return Azurite{Endpoint: srv.endpoint, AccountName: azuriteAccount, AccountKey: azuriteKey, Container: container}
}

type azuriteServer struct {
	*emulator
	endpoint      string
	client        *azblob.Client
	nextContainer atomic.Int64
}

var sharedAzurite = sync.OnceValues(startAzurite)

func startAzurite() (*azuriteServer, error) {
	dirs := peersDir("PEERS_NPM", "npm")
	for i := range dirs {
		dirs[i] += "/node_modules/.bin"
	}
	bin, err := findTool("azurite-blob", "bash ../shared/tools/install-azurite.sh", dirs...)
	if err != nil {
		return nil, err
	}
	e, err := startEmulator(emulatorSpec{
		name: "azurite",
		command: func(dir string, port int) []string {
			return []string{bin, "--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
				"--location", dir + "/data", "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"}
		},
		// Any answer from the blob service will do: an anonymous
		// listing is refused.
		ready: func(ctx context.Context, addr string) error {
			err := httpReady("/"+azuriteAccount+"?comp=list", http.StatusForbidden)(ctx, addr)
			if err != nil {
				return httpReady("/"+azuriteAccount+"?comp=list", http.StatusUnauthorized)(ctx, addr)
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	endpoint := "http://" + e.addr + "/" + azuriteAccount
	cred, err := azblob.NewSharedKeyCredential(azuriteAccount, azuriteKey)
	if err == nil {
		var client *azblob.Client
		if client, err = azblob.NewClientWithSharedKeyCredential(endpoint+"/", cred, nil); err == nil {
			return &azuriteServer{emulator: e, endpoint: endpoint, client: client}, nil
		}
	}
	e.control.Close()
	return nil, err
}
