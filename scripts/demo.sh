#!/usr/bin/env bash
echo "make demo: not yet (issue 5)"
