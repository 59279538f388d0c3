import { describe, expect, test } from "vitest";
import { formatDuration, parseDuration } from "./duration.js";

describe("parseDuration", () => {
  test.each([
    [90, 90_000],
    [0, 0],
    [1.5, 1_500],
    ["90", 90_000],
    ["2.5", 2_500],
    ["90s", 90_000],
    ["15m", 900_000],
    ["2h", 7_200_000],
    ["1d", 86_400_000],
    ["500ms", 500],
    ["1h30m", 5_400_000],
    ["1m500ms", 60_500],
    ["1d2h3m4s", 93_784_000],
    ["1.5h", 5_400_000],
    [" 2h ", 7_200_000],
  ] as const)("%j is %d ms", (input, ms) => {
    // Given a duration as a user writes it
    // When it is parsed
    // Then it is that many milliseconds (a bare number is seconds)
    expect(parseDuration(input)).toBe(ms);
  });

  test.each([
    "",
    "   ",
    "abc",
    "-5",
    "-5s",
    "5x",
    "1h 30m",
    "h",
    "1.h",
    "10M",
    "s10",
    "1h30",
    -1,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ] as const)("%j is not a duration", (input) => {
    // Given text or a number that is not a duration
    // When it is parsed
    // Then the result is undefined, so the caller can name the field in its error
    expect(parseDuration(input)).toBeUndefined();
  });
});

describe("formatDuration", () => {
  test.each([
    [0, "0ms"],
    [850, "850ms"],
    [1_000, "1s"],
    [42_000, "42s"],
    [59_000, "59s"],
    [60_000, "1m00s"],
    [192_000, "3m12s"],
    [59_600, "1m00s"],
    [3_600_000, "1h00m"],
    [7_500_000, "2h05m"],
    [90_000_000, "25h00m"],
  ] as const)("%d ms is %s", (ms, text) => {
    // Given a number of milliseconds
    // When it is formatted for people
    // Then it reads as the largest sensible units, zero-padded after the first
    expect(formatDuration(ms)).toBe(text);
  });

  test.each([850, 42_000, 192_000, 3_600_000, 7_500_000])(
    "formatting %d ms parses back to the same value",
    (ms) => {
      // Given a value that formats without rounding
      // When it is formatted and parsed again
      // Then the round trip is exact
      expect(parseDuration(formatDuration(ms))).toBe(ms);
    },
  );
});
