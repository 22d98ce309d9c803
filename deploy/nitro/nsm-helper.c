/*
 * nsm-helper: sends one request to the Nitro Secure Module and prints its response.
 *
 *   nsm-helper [device]      (device defaults to /dev/nsm)
 *
 * Reads the CBOR request from stdin (at most 4 KiB), issues the NSM raw ioctl, writes the CBOR response
 * (at most 12 KiB) to stdout. The enclave's NitroProvider (attestation/providers/nitro.ts) runs it once per
 * attestation; all CBOR encoding and checking happens there. Nothing here interprets the bytes.
 *
 * Exit status: 0 success; 64 bad input (empty or larger than 4 KiB, or a bad argument); 69 the device cannot
 * be opened; 70 the ioctl failed; 74 reading stdin or writing stdout failed. A one-line reason goes to stderr.
 *
 * How the interface was checked (the helper cannot run outside a Nitro enclave):
 *  - device path /dev/nsm: aws/aws-nitro-enclaves-nsm-api, src/driver/mod.rs (DEV_FILE = "/dev/nsm", opened
 *    read-write), and the Linux driver drivers/misc/nsm.c, which registers the misc device "nsm";
 *  - ioctl shape: include/uapi/linux/nsm.h in Linux (also vendored by Android's bionic): NSM_MAGIC 0x0A,
 *    struct nsm_raw { struct nsm_iovec request, response; } with nsm_iovec { __u64 addr; __u64 len; },
 *    NSM_IOCTL_RAW = _IOWR(NSM_MAGIC, 0, struct nsm_raw), NSM_REQUEST_MAX_SIZE 0x1000,
 *    NSM_RESPONSE_MAX_SIZE 0x3000; nsm-api's driver uses the same number with two iovecs (same layout on
 *    64-bit) and decodes the response from the iovec the kernel shortened to the bytes written;
 *  - response length: nsm_dev_ioctl copies the struct back to user space after the device answers, with
 *    response.len set to the size of the response.
 * Build (static, for the enclave image): cc -O2 -static -Wall -Wextra -o nsm-helper nsm-helper.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define NSM_DEVICE "/dev/nsm"
#define NSM_MAGIC 0x0A
#define NSM_REQUEST_MAX_SIZE 0x1000
#define NSM_RESPONSE_MAX_SIZE 0x3000

struct nsm_iovec {
	uint64_t addr;
	uint64_t len;
};

struct nsm_raw {
	struct nsm_iovec request;
	struct nsm_iovec response;
};

#define NSM_IOCTL_RAW _IOWR(NSM_MAGIC, 0x0, struct nsm_raw)

enum {
	EXIT_USAGE = 64,
	EXIT_UNAVAILABLE = 69,
	EXIT_IOCTL = 70,
	EXIT_IO = 74,
};

static unsigned char request[NSM_REQUEST_MAX_SIZE];
static unsigned char response[NSM_RESPONSE_MAX_SIZE];

static int fail(int status, const char *what, int err)
{
	if (err)
		fprintf(stderr, "nsm-helper: %s: %s\n", what, strerror(err));
	else
		fprintf(stderr, "nsm-helper: %s\n", what);
	return status;
}

/* Reads all of stdin into request; returns its length, -1 on a read error, -2 if it is too large. */
static ssize_t read_request(void)
{
	size_t len = 0;
	for (;;) {
		unsigned char extra;
		ssize_t n;
		if (len == sizeof(request)) {
			/* Full buffer: anything more makes the request too large. */
			n = read(STDIN_FILENO, &extra, 1);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return -1;
			return n == 0 ? (ssize_t)len : -2;
		}
		n = read(STDIN_FILENO, request + len, sizeof(request) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return (ssize_t)len;
		len += (size_t)n;
	}
}

static int write_all(const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *device = NSM_DEVICE;
	struct nsm_raw raw;
	ssize_t req_len;
	int fd, rc;

	if (argc > 2)
		return fail(EXIT_USAGE, "usage: nsm-helper [device]", 0);
	if (argc == 2)
		device = argv[1];

	req_len = read_request();
	if (req_len == -1)
		return fail(EXIT_IO, "reading the request from stdin", errno);
	if (req_len == -2)
		return fail(EXIT_USAGE, "request larger than 4096 bytes", 0);
	if (req_len == 0)
		return fail(EXIT_USAGE, "empty request", 0);

	fd = open(device, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return fail(EXIT_UNAVAILABLE, device, errno);

	memset(&raw, 0, sizeof(raw));
	raw.request.addr = (uint64_t)(uintptr_t)request;
	raw.request.len = (uint64_t)req_len;
	raw.response.addr = (uint64_t)(uintptr_t)response;
	raw.response.len = sizeof(response);

	do {
		rc = ioctl(fd, NSM_IOCTL_RAW, &raw);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		int err = errno;
		close(fd);
		return fail(EXIT_IOCTL, "NSM ioctl", err);
	}
	close(fd);

	if (raw.response.len == 0 || raw.response.len > sizeof(response))
		return fail(EXIT_IOCTL, "NSM returned an impossible response length", 0);
	if (write_all(response, (size_t)raw.response.len) != 0)
		return fail(EXIT_IO, "writing the response to stdout", errno);
	return 0;
}
