using System.Diagnostics;
using System.Runtime.InteropServices;

namespace ERCache.Samples.RankingService;

/// <summary>
/// The calling thread's CPU time in <see cref="TimeSpan"/> ticks: <c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c> on
/// Linux, so time the thread spends preempted is not counted; elsewhere, wall-clock time (an upper bound).
/// </summary>
internal static partial class ThreadCpuClock
{
    private const int ClockThreadCpuTimeId = 3;
    private static readonly bool Supported = OperatingSystem.IsLinux();

    public static long NowTicks()
    {
        if (Supported && ClockGetTime(ClockThreadCpuTimeId, out var ts) == 0)
        {
            return (ts.Seconds * TimeSpan.TicksPerSecond) + (ts.Nanoseconds / 100);
        }

        return Stopwatch.GetElapsedTime(0).Ticks;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clockId, out TimeSpec value);

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }
}
