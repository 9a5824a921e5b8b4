package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"

	"github.com/berthhq/berth/client"
	"github.com/berthhq/berth/client/credentials"
	"github.com/berthhq/berth/client/service"
)

func ExampleParseReference() {
	for _, s := range []string{"ubuntu", "localhost:5000/team/app:v1", "ghcr.io/o/r@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"} {
		ref, err := client.ParseReference(s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s → registry %s, repository %s, fetched by %.19s\n", s, ref.Registry, ref.Repository, ref.Identifier())
	}
	// Output:
	// ubuntu → registry docker.io, repository library/ubuntu, fetched by latest
	// localhost:5000/team/app:v1 → registry localhost:5000, repository team/app, fetched by v1
	// ghcr.io/o/r@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 → registry ghcr.io, repository o/r, fetched by sha256:e3b0c44298fc
}

func ExampleNew() {
	// Docker's daemon configuration, as a CLI would read it from flags or a file.
	svc, err := service.New(service.Options{
		Mirrors:            []string{"https://mirror.example.com"},
		InsecureRegistries: []string{"10.0.0.0/8", "registry.lan:5000"},
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New(
		client.WithService(svc),
		client.WithCredentials(credentials.NewConfigFile("").Get), // ~/.docker/config.json
		client.WithUserAgent("mytool/1.0"),
	)
	if err != nil {
		log.Fatal(err)
	}
	for _, ep := range c.Service().Config().PullEndpoints(context.Background(), "docker.io") {
		fmt.Println(ep, "mirror:", ep.Mirror)
	}
	// Output:
	// https://mirror.example.com mirror: true
	// https://registry-1.docker.io mirror: false
}

func ExampleClient_Push() {
	host, stop := exampleRegistry()
	defer stop()
	layout, remove := exampleLayout() // an OCI image layout holding an image named "hello"
	defer remove()

	c, err := client.New(client.WithCredentials(nil))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	ref, err := client.ParseReference(host + "/hello:v1")
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	sent := map[string]int64{}
	desc, err := c.Push(ctx, layout, "hello", ref, client.CopyOptions{
		Progress: func(e client.ProgressEvent) {
			mu.Lock()
			defer mu.Unlock()
			if e.Kind == client.BlobDone {
				sent[e.Descriptor.MediaType] = e.Transferred
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	got, err := c.HeadManifest(ctx, ref)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("pushed as pulled:", got.Digest == desc.Digest)
	fmt.Println("layer bytes sent:", sent["application/vnd.oci.image.layer.v1.tar+gzip"])
	// Output:
	// pushed as pulled: true
	// layer bytes sent: 4096
}

func ExampleClient_Copy() {
	host, stop := exampleRegistry()
	defer stop()
	layout, remove := exampleLayout()
	defer remove()
	c, err := client.New(client.WithCredentials(nil))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	src, _ := client.ParseReference(host + "/team/hello:v1")
	if _, err := c.Push(ctx, layout, "hello", src, client.CopyOptions{}); err != nil {
		log.Fatal(err)
	}

	// Within one registry the layers are mounted, not sent.
	dst, _ := client.ParseReference(host + "/other/hello:stable")
	mounted := 0
	var mu sync.Mutex
	_, err = c.Copy(ctx, src, dst, client.CopyOptions{Progress: func(e client.ProgressEvent) {
		mu.Lock()
		defer mu.Unlock()
		if e.Kind == client.BlobMounted {
			mounted++
		}
	}})
	if err != nil {
		log.Fatal(err)
	}
	tags, err := c.Tags(ctx, dst.Repo(), client.ListOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("blobs mounted:", mounted)
	fmt.Println("tags:", tags)
	// Output:
	// blobs mounted: 2
	// tags: [stable]
}

func ExampleClient_GetManifest_notFound() {
	host, stop := exampleRegistry()
	defer stop()
	c, err := client.New(client.WithCredentials(nil))
	if err != nil {
		log.Fatal(err)
	}
	ref, _ := client.ParseReference(host + "/nothing:here")
	_, err = c.GetManifest(context.Background(), ref)
	// A CLI picks its exit code by category.
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Println("not found")
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrDenied):
		fmt.Println("access")
	}
	var regErr *client.RegistryError
	if errors.As(err, &regErr) {
		fmt.Println(regErr.StatusCode, regErr.Errors[0].Code)
	}
	// Output:
	// not found
	// 404 MANIFEST_UNKNOWN
}
