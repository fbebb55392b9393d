package main

// ReceiveCmd is a placeholder until the receiver lands.
type ReceiveCmd struct{}
// AuthorizeCmd is a placeholder until authorize lands.
type AuthorizeCmd struct{}
