import { describe, expect, test } from "vitest";
import {
  type AttemptEnd,
  afterAttempt,
  effectiveExitCode,
  MAX_LOST_ATTEMPTS,
  retryDelayMs,
  TIMEOUT_EXIT_CODE,
} from "./retry.js";
import { RetrySpec } from "./spec.js";

const NOW = 1_700_000_000_000;

const fresh = { failures: 0, lost: 0, attempt: 1 };

function exit(overrides: Partial<Extract<AttemptEnd, { kind: "exit" }>> = {}): AttemptEnd {
  return { kind: "exit", exitCode: 1, signal: null, timedOut: false, durationMs: 1234, ...overrides };
}

describe("afterAttempt: success", () => {
  test("exit 0 succeeds and records the result", () => {
    // Given a task on its first attempt
    const policy = RetrySpec.parse({ max_attempts: 3 });
    // When the attempt exits 0 with metrics and outputs
    const update = afterAttempt(
      fresh,
      policy,
      exit({ exitCode: 0, metrics: { loss: 0.1 }, outputs: ["a/b.txt"] }),
      NOW,
      0.5,
    );
    // Then the task is succeeded, with the result recorded and no error
    expect(update).toMatchObject({
      status: "succeeded",
      finishedAt: NOW,
      exitCode: 0,
      signal: null,
      durationMs: 1234,
      metrics: { loss: 0.1 },
      outputs: ["a/b.txt"],
      error: null,
      updatedAt: NOW,
    });
    expect(update).not.toHaveProperty("failures");
  });

  test("exit 0 with an error (e.g. outputs failed to upload) is a failure", () => {
    // Given a task with one attempt allowed
    const policy = RetrySpec.parse({});
    // When the process exits 0 but the runner reports an error
    const update = afterAttempt(fresh, policy, exit({ exitCode: 0, error: "upload failed" }), NOW, 0);
    // Then the task failed with that error
    expect(update).toMatchObject({ status: "failed", failures: 1, error: "upload failed" });
  });
});

describe("afterAttempt: retries", () => {
  test("exponential backoff doubles from base and is capped by max_delay", () => {
    // Given a policy of 6 attempts, base 10 s, at most 60 s
    const policy = RetrySpec.parse({
      max_attempts: 6,
      backoff: "exponential",
      base: "10s",
      max_delay: "60s",
    });
    // When attempts 1..5 fail in turn
    const delays = [0, 1, 2, 3, 4].map((failures) => {
      const update = afterAttempt({ failures, lost: 0, attempt: failures + 1 }, policy, exit(), NOW, 0.5);
      expect(update.status).toBe("pending");
      expect(update.failures).toBe(failures + 1);
      return (update.readyAt as number) - NOW;
    });
    // Then the delays are base * 2^(n-1), capped at max_delay
    expect(delays).toEqual([10_000, 20_000, 40_000, 60_000, 60_000]);
  });

  test("fixed backoff waits base every time, never above max_delay", () => {
    // Given fixed policies
    const policy = RetrySpec.parse({ max_attempts: 5, backoff: "fixed", base: "15s" });
    const capped = RetrySpec.parse({ max_attempts: 5, backoff: "fixed", base: "30s", max_delay: "10s" });
    // When the delays of successive retries are computed
    // Then every one is base (or max_delay when smaller)
    for (const failures of [1, 2, 3, 4]) {
      expect(retryDelayMs(policy, failures, 0.9)).toBe(15_000);
      expect(retryDelayMs(capped, failures, 0.9)).toBe(10_000);
    }
    expect(afterAttempt({ failures: 2, lost: 0, attempt: 3 }, policy, exit(), NOW, 0.9).readyAt).toBe(
      NOW + 15_000,
    );
  });

  test("exponential-jitter is uniform in [0, exponential) driven by the injected random", () => {
    // Given a jittered policy with base 10 s; the third retry's exponential delay is 40 s
    const policy = RetrySpec.parse({
      max_attempts: 10,
      backoff: "exponential-jitter",
      base: "10s",
      max_delay: "1h",
    });
    // When the random number is at the low end, the middle and just below 1
    // Then the delay is 0, half, and strictly less than the exponential delay
    expect(retryDelayMs(policy, 3, 0)).toBe(0);
    expect(retryDelayMs(policy, 3, 0.5)).toBe(20_000);
    const high = retryDelayMs(policy, 3, 0.999_999_9);
    expect(high).toBeLessThan(40_000);
    expect(high).toBeGreaterThanOrEqual(39_990);
    // And afterAttempt uses it for readyAt
    const update = afterAttempt({ failures: 2, lost: 0, attempt: 3 }, policy, exit(), NOW, 0.25);
    expect(update.readyAt).toBe(NOW + 10_000);
  });

  test("exponential-jitter respects max_delay", () => {
    // Given a jittered policy capped at 30 s
    const policy = RetrySpec.parse({
      max_attempts: 20,
      backoff: "exponential-jitter",
      base: "10s",
      max_delay: "30s",
    });
    // When a late retry draws a random number near 1
    // Then the delay stays below the cap
    for (const failures of [5, 10, 15]) {
      const delay = retryDelayMs(policy, failures, 0.999_999);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(30_000);
    }
  });

  test("max_attempts exhaustion fails the task and says how many attempts were made", () => {
    // Given a policy of 3 attempts and a task that already failed twice
    const policy = RetrySpec.parse({ max_attempts: 3 });
    // When the third attempt fails too
    const update = afterAttempt({ failures: 2, lost: 0, attempt: 3 }, policy, exit({ exitCode: 2 }), NOW, 0);
    // Then the task is failed, final, and the message names the exit and the attempts
    expect(update).toMatchObject({ status: "failed", failures: 3, finishedAt: NOW, exitCode: 2 });
    expect(update.error).toBe("exited with code 2; gave up after 3 attempts");
    expect(update).not.toHaveProperty("readyAt");
  });

  test("with the default single attempt a failure is final and the message is just the exit", () => {
    // Given the default policy (1 attempt)
    const policy = RetrySpec.parse({});
    // When the first attempt is killed by a signal
    const update = afterAttempt(fresh, policy, exit({ exitCode: null, signal: "SIGSEGV" }), NOW, 0);
    // Then it failed with the signal named
    expect(update).toMatchObject({ status: "failed", failures: 1, signal: "SIGSEGV", exitCode: null });
    expect(update.error).toBe("killed by SIGSEGV");
  });
});

describe("afterAttempt: dont_retry_on_exit_codes", () => {
  test("an excluded code fails at once, even when on_exit_codes is unset", () => {
    // Given a policy that retries anything but exit 2
    const policy = RetrySpec.parse({ max_attempts: 5, dont_retry_on_exit_codes: [2] });
    // When attempts exit 2 and 1
    const two = afterAttempt(fresh, policy, exit({ exitCode: 2 }), NOW, 0);
    const one = afterAttempt(fresh, policy, exit({ exitCode: 1 }), NOW, 0);
    // Then 2 fails for good, naming the setting, and 1 is retried
    expect(two.status).toBe("failed");
    expect(two.error).toBe("exited with code 2; exit code 2 is in retry.dont_retry_on_exit_codes");
    expect(one.status).toBe("pending");
  });
});

describe("afterAttempt: on_exit_codes", () => {
  const policy = RetrySpec.parse({ max_attempts: 5, on_exit_codes: [137, 124, 3] });

  test("a listed exit code is retried", () => {
    // Given on_exit_codes [137, 124, 3]
    // When the attempt exits 3
    const update = afterAttempt(fresh, policy, exit({ exitCode: 3 }), NOW, 0);
    // Then it is retried
    expect(update.status).toBe("pending");
  });

  test("an unlisted exit code fails at once and the message says why", () => {
    // Given on_exit_codes [137, 124, 3]
    // When the attempt exits 1
    const update = afterAttempt(fresh, policy, exit({ exitCode: 1 }), NOW, 0);
    // Then it fails without retrying, naming the code and the setting
    expect(update.status).toBe("failed");
    expect(update.error).toBe("exited with code 1; exit code 1 is not in retry.on_exit_codes");
  });

  test("a signal counts as 128+n: SIGKILL is 137 (retried), SIGTERM is 143 (not)", () => {
    // Given on_exit_codes [137, 124, 3]
    // When attempts are killed by SIGKILL and SIGTERM
    const killed = afterAttempt(fresh, policy, exit({ exitCode: null, signal: "SIGKILL" }), NOW, 0);
    const terminated = afterAttempt(fresh, policy, exit({ exitCode: null, signal: "SIGTERM" }), NOW, 0);
    // Then SIGKILL (137) is retried and SIGTERM (143) is not
    expect(killed.status).toBe("pending");
    expect(terminated.status).toBe("failed");
    expect(terminated.error).toContain("exit code 143 is not in retry.on_exit_codes");
  });

  test("a timeout counts as 124", () => {
    // Given on_exit_codes [137, 124, 3]
    // When the attempt timed out (the process was then killed)
    const update = afterAttempt(
      fresh,
      policy,
      exit({ exitCode: null, signal: "SIGKILL", timedOut: true }),
      NOW,
      0,
    );
    // Then it is retried as exit 124 and described as a timeout
    expect(update.status).toBe("pending");
    expect(update.error).toBe("timed out");
    expect(effectiveExitCode({ exitCode: null, signal: "SIGKILL", timedOut: true })).toBe(TIMEOUT_EXIT_CODE);
    expect(TIMEOUT_EXIT_CODE).toBe(124);
  });

  test("effectiveExitCode: exit codes pass through, signals become 128+n", () => {
    // Given a variety of exits
    // When their shell-visible codes are computed
    // Then they follow the shell's convention
    expect(effectiveExitCode({ exitCode: 7, signal: null, timedOut: false })).toBe(7);
    expect(effectiveExitCode({ exitCode: null, signal: "SIGKILL", timedOut: false })).toBe(137);
    expect(effectiveExitCode({ exitCode: null, signal: "SIGINT", timedOut: false })).toBe(130);
    expect(effectiveExitCode({ exitCode: null, signal: "SIGSEGV", timedOut: false })).toBe(139);
  });

  // Regression: every Linux signal maps to 128+n, so `on_exit_codes: [152]` retries a task
  // killed by SIGXCPU (CPU-time limit, 24).
  test("effectiveExitCode maps every standard Linux signal to 128+n (SIGTRAP, SIGXCPU, SIGXFSZ)", () => {
    // Given signals outside the hand-written table (Linux numbering, as on the instances)
    const cases: Array<[string, number]> = [
      ["SIGTRAP", 5],
      ["SIGXCPU", 24],
      ["SIGXFSZ", 25],
      ["SIGSYS", 31],
    ];
    // When their shell-visible exit codes are computed
    // Then each is 128 + the signal number
    for (const [signal, n] of cases) {
      expect(effectiveExitCode({ exitCode: null, signal, timedOut: false }), signal).toBe(128 + n);
    }
  });
});

describe("afterAttempt: lost and cancelled", () => {
  const policy = RetrySpec.parse({ max_attempts: 2 });

  test("a lost attempt goes back to pending at once without using up a failure", () => {
    // Given a task that failed once before, on attempt 2
    const task = { failures: 1, lost: 0, attempt: 2 };
    // When the attempt is lost (lease expired)
    const update = afterAttempt(task, policy, { kind: "lost", reason: "spot interruption" }, NOW, 0.5);
    // Then it is pending, ready now, lost counted, failures untouched
    expect(update).toMatchObject({
      status: "pending",
      lost: 1,
      readyAt: NOW,
      error: "attempt 2 lost: spot interruption",
    });
    expect(update).not.toHaveProperty("failures");
    expect(update).not.toHaveProperty("finishedAt");
  });

  test(`a task lost ${MAX_LOST_ATTEMPTS} times is failed instead of re-queued forever`, () => {
    // Given a task lost MAX_LOST_ATTEMPTS-1 times, and one lost MAX_LOST_ATTEMPTS-2 times
    const nearly = { failures: 0, lost: MAX_LOST_ATTEMPTS - 1, attempt: MAX_LOST_ATTEMPTS };
    const before = { failures: 0, lost: MAX_LOST_ATTEMPTS - 2, attempt: MAX_LOST_ATTEMPTS - 1 };
    // When each is lost again
    const final = afterAttempt(nearly, policy, { kind: "lost", reason: "gone" }, NOW, 0);
    const again = afterAttempt(before, policy, { kind: "lost", reason: "gone" }, NOW, 0);
    // Then the first is failed with a message, the second is still re-queued
    expect(final).toMatchObject({ status: "failed", lost: MAX_LOST_ATTEMPTS, finishedAt: NOW });
    expect(final.error).toBe(`lost ${MAX_LOST_ATTEMPTS} times (last: gone); giving up`);
    expect(again).toMatchObject({ status: "pending", lost: MAX_LOST_ATTEMPTS - 1 });
  });

  test("cancelled is final whatever the retry policy", () => {
    // Given a generous policy and a task with attempts left
    const generous = RetrySpec.parse({ max_attempts: 100 });
    // When the attempt is cancelled
    const update = afterAttempt(fresh, generous, { kind: "cancelled", reason: "sweep cancelled" }, NOW, 0);
    // Then the task is cancelled, finished, with the reason
    expect(update).toEqual({
      status: "cancelled",
      finishedAt: NOW,
      error: "sweep cancelled",
      leaseOwner: null,
      leaseExpiresAt: null,
      updatedAt: NOW,
    });
  });

  test("every update clears the lease", () => {
    // Given every kind of attempt end
    const ends: AttemptEnd[] = [
      exit({ exitCode: 0 }),
      exit({ exitCode: 1 }),
      exit({ exitCode: null, signal: "SIGKILL" }),
      exit({ exitCode: null, signal: null, timedOut: true }),
      { kind: "lost", reason: "x" },
      { kind: "cancelled", reason: "y" },
    ];
    for (const end of ends) {
      for (const task of [fresh, { failures: 1, lost: MAX_LOST_ATTEMPTS - 1, attempt: 5 }]) {
        // When the attempt closes
        const update = afterAttempt(task, policy, end, NOW, 0.3);
        // Then the lease owner and expiry are removed (null), and updatedAt is now
        expect(update, JSON.stringify(end)).toHaveProperty("leaseOwner", null);
        expect(update, JSON.stringify(end)).toHaveProperty("leaseExpiresAt", null);
        expect(update.updatedAt).toBe(NOW);
      }
    }
  });
});
