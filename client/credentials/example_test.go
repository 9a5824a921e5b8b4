package credentials_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/berthhq/berth/client/credentials"
)

func ExampleConfigFile() {
	dir, err := os.MkdirTemp("", "docker-config-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cf := credentials.NewConfigFile(filepath.Join(dir, "config.json"))
	ctx := context.Background()

	// A login stores what it verified; Docker Hub's names share one key.
	if err := cf.Store(ctx, "docker.io", credentials.Credentials{Username: "me", Password: "pw"}); err != nil {
		log.Fatal(err)
	}
	c, err := cf.Get(ctx, "registry-1.docker.io")
	fmt.Println(c.Username, c.Password, err)
	cfg, _ := cf.Load()
	for key := range cfg.Auths {
		fmt.Println("key:", key)
	}
	// A logout erases it.
	if err := cf.Erase(ctx, "index.docker.io"); err != nil {
		log.Fatal(err)
	}
	c, _ = cf.Get(ctx, "docker.io")
	fmt.Println("after logout, empty:", c.Empty())
	// Output:
	// me pw <nil>
	// key: https://index.docker.io/v1/
	// after logout, empty: true
}
