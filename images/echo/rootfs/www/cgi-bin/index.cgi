#!/bin/sh
# minik8s echo: answers every request with the pod name ($POD_NAME, else the hostname).
# busybox httpd sends the "HTTP/1.1 200 OK" status line itself.
printf 'Content-Type: text/plain\r\n\r\n%s\n' "${POD_NAME:-$(hostname)}"
