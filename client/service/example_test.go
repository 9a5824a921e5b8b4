package service_test

import (
	"context"
	"fmt"
	"log"

	"github.com/berthhq/berth/client/service"
)

func ExampleService() {
	svc, err := service.New(service.Options{InsecureRegistries: []string{"registry.lan:5000"}})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, host := range []string{"registry.lan:5000", "127.0.0.1:5000", "ghcr.io"} {
		fmt.Println(host, svc.Config().PushEndpoints(ctx, host))
	}
	// A reload is validated first, then replaces the whole configuration at once.
	err = svc.Reload(service.Options{Mirrors: []string{"https://mirror.example.com/?x=1"}})
	fmt.Println("reload:", err)
	fmt.Println("still insecure:", svc.Config().IsInsecure(ctx, "registry.lan:5000"))
	// Output:
	// registry.lan:5000 [https://registry.lan:5000 http://registry.lan:5000]
	// 127.0.0.1:5000 [https://127.0.0.1:5000 http://127.0.0.1:5000]
	// ghcr.io [https://ghcr.io]
	// reload: mirror "https://mirror.example.com/?x=1": a query is not allowed
	// still insecure: true
}
