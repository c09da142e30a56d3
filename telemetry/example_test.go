package telemetry_test

import (
	"context"
	"fmt"
	"time"

	"github.com/respguard/respguard/telemetry"
)

// The proxy builds one Telemetry at start-up and reports each command once
// its reply has been handed to the client writer.
func Example() {
	ctx := context.Background()
	tel, err := telemetry.New(ctx, telemetry.Config{}, telemetry.Options{})
	if err != nil {
		panic(err)
	}
	defer tel.Shutdown(ctx)

	start := time.Now()
	c := telemetry.Command{
		Name: "get", Start: start, Done: start.Add(40 * time.Millisecond),
		User: "app", ClientAddr: "10.0.0.7:51234", Decision: "allowed",
		Args: [][]byte{[]byte("get"), []byte("user:1")}, KeyIndexes: []int{1},
	}
	tel.CommandDone(&c) // slower than the 10ms slow-log threshold

	e := tel.Slowlog()[0]
	fmt.Println(e.Command, e.Statement, e.Duration)
	// Output: get GET user:1 40ms
}
