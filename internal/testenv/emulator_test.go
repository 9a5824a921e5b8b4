package testenv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"google.golang.org/api/option"
)

// TestGCS stores and reads an object in two buckets, which must be
// separate.
func TestGCS(t *testing.T) {
	a, b := StartGCS(t), StartGCS(t)
	if a.Bucket == b.Bucket {
		t.Fatalf("two tests got bucket %s", a.Bucket)
	}
	ctx := context.Background()
	c, err := storage.NewClient(ctx, option.WithEndpoint(a.Endpoint+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	w := c.Bucket(a.Bucket).Object("x/y").NewWriter(ctx)
	w.Write([]byte("hello"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Bucket(a.Bucket).Object("x/y").NewReader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	if !bytes.Equal(got, []byte("hello")) {
		t.Errorf("read %q", got)
	}
	if _, err := c.Bucket(b.Bucket).Object("x/y").Attrs(ctx); !errors.Is(err, storage.ErrObjectNotExist) {
		t.Errorf("the other bucket has it: %v", err)
	}
}

// TestAzurite stores and reads a blob.
func TestAzurite(t *testing.T) {
	a := StartAzurite(t)
	cred, err := azblob.NewSharedKeyCredential(a.AccountName, a.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := azblob.NewClientWithSharedKeyCredential(a.Endpoint+"/", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.UploadBuffer(ctx, a.Container, "x/y", []byte("hello"), nil); err != nil {
		t.Fatal(err)
	}
	resp, err := c.DownloadStream(ctx, a.Container, "x/y", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(got, []byte("hello")) {
		t.Errorf("read %q", got)
	}
}
