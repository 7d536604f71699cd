using System.Diagnostics;
using System.Globalization;

namespace ERCache.Benchmarks;

/// <summary>
/// The round trip of one cache line between two threads, each spinning on its own core: what every crossing of a miss
/// from the caller's thread to an inference thread and back pays for each line the two share. On a virtual machine it
/// depends on where the host placed the two virtual CPUs (on the 2-vCPU machines here it flips between about 75 and
/// about 370 ns as the host moves them), so a figure for a miss with default options, or for two threads sharing a
/// cache, means little without it.
/// </summary>
internal static class CoreToCore
{
    private const int RoundTrips = 200_000;

    /// <summary>Prints the median round trip of each second for <paramref name="seconds"/> seconds.</summary>
    public static void Run(int seconds)
    {
        for (int second = 0; second < seconds; second++)
        {
            double median = MedianRoundTrip(TimeSpan.FromSeconds(1), RoundTrips);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"second {second + 1}: {median:F0} ns per round trip"));
        }
    }

    /// <summary>The median round trip, in nanoseconds, of batches of <paramref name="roundTrips"/> bounces taken for
    /// <paramref name="duration"/> (at least one batch). Starts and stops its own echo thread, so nothing spins
    /// outside it: a benchmark reads it between its measurements.</summary>
    public static double MedianRoundTrip(TimeSpan duration, int roundTrips = 20_000)
    {
        var line = new long[32]; // the middle element sits on a line of its own
        var echo = new Thread(() => Echo(line)) { IsBackground = true, Name = "core-to-core echo" };
        echo.Start();
        long value = 0;
        var batches = new List<double>();
        var clock = Stopwatch.StartNew();
        do
        {
            long started = Stopwatch.GetTimestamp();
            for (int i = 0; i < roundTrips; i++)
            {
                Volatile.Write(ref line[16], ++value); // odd: the echo's turn
                value++;
                while (Volatile.Read(ref line[16]) != value)
                {
                }
            }

            batches.Add(Stopwatch.GetElapsedTime(started).TotalNanoseconds / roundTrips);
        }
        while (clock.Elapsed < duration);

        Volatile.Write(ref line[16], -1);
        echo.Join();
        batches.Sort();
        return batches[batches.Count / 2];
    }

    private static void Echo(long[] line)
    {
        while (true)
        {
            long seen = Volatile.Read(ref line[16]);
            if (seen < 0)
            {
                return;
            }

            if ((seen & 1) == 1)
            {
                Volatile.Write(ref line[16], seen + 1);
            }
        }
    }
}
