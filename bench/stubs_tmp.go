package main

import "context"

const probeArg = "-probe"

func probeMain(args []string) int                                         { return 2 }
func localityFigure(ctx context.Context, e *env, f *Figure) error  { return errSkip }
func planningFigure(ctx context.Context, e *env, f *Figure) error  { return errSkip }
func preallocFigure(ctx context.Context, e *env, f *Figure) error  { return errSkip }
