using System.Diagnostics;
using System.Globalization;

namespace ERCache.Benchmarks;

/// <summary>
/// The round trip of one cache line between two threads, each spinning on its own core: what every crossing of a miss
/// from the caller's thread to an inference thread and back pays for each line the two share. On a virtual machine it
/// depends on where the host placed the two virtual CPUs (on the 2-vCPU machines here it flips between about 75 and
/// about 370 ns as the host moves them), so a figure for a miss with default options means little without it.
/// </summary>
internal static class CoreToCore
{
    private const int RoundTrips = 200_000;

    /// <summary>Prints the median round trip of each second for <paramref name="seconds"/> seconds.</summary>
    public static void Run(int seconds)
    {
        var line = new long[32]; // the middle element sits on a line of its own
        var echo = new Thread(() => Echo(line)) { IsBackground = true, Name = "core-to-core echo" };
        echo.Start();
        long value = 0;
        for (int second = 0; second < seconds; second++)
        {
            var medians = new List<double>();
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromSeconds(1))
            {
                long started = Stopwatch.GetTimestamp();
                for (int i = 0; i < RoundTrips; i++)
                {
                    Volatile.Write(ref line[16], ++value); // odd: the echo's turn
                    value++;
                    while (Volatile.Read(ref line[16]) != value)
                    {
                    }
                }

                medians.Add(Stopwatch.GetElapsedTime(started).TotalNanoseconds / RoundTrips);
            }

            medians.Sort();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"second {second + 1}: {medians[medians.Count / 2]:F0} ns per round trip"));
        }

        Volatile.Write(ref line[16], -1);
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
