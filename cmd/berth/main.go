// Command berth is a container registry and a registry client.
package main

import "github.com/berthhq/berth/cmd/berthcmd"

func main() { berthcmd.Execute() }
