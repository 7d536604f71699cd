using ERCache.Replay.Replay;

namespace ERCache.Replay.Tests;

/// <summary>The replay's clock: timers and scheduled work run in due-time order, each at its own time.</summary>
public sealed class SimulationClockTests
{
    private static long Ms(double ms) => (long)(ms * TimeSpan.TicksPerMillisecond);

    [Fact]
    public void Work_and_timers_run_in_due_order_each_at_its_own_time_and_ties_in_scheduling_order()
    {
        var clock = new SimulationClock();
        var log = new List<(string What, long AtMs)>();
        clock.Schedule(Ms(30), () => log.Add(("work 30", clock.NowMs)));
        using var timer = clock.CreateTimer(_ => log.Add(("timer 10", clock.NowMs)), null, TimeSpan.FromMilliseconds(10), Timeout.InfiniteTimeSpan);
        clock.Schedule(Ms(10), () => log.Add(("work 10", clock.NowMs)));
        clock.Schedule(Ms(50), () => log.Add(("work 50", clock.NowMs)));
        int afterEach = 0;

        clock.RunUntil(Ms(40), () => afterEach++);

        Assert.Equal([("timer 10", 10L), ("work 10", 10L), ("work 30", 30L)], log);
        Assert.Equal(3, afterEach);
        Assert.Equal(40, clock.NowMs);
        Assert.Equal(SimulationClock.Epoch.AddMilliseconds(40), clock.GetUtcNow());
        Assert.Equal(TimeSpan.FromMilliseconds(40), clock.GetElapsedTime(clock.GetTimestamp() - Ms(40)));
    }

    [Fact]
    public void A_changed_timer_fires_only_at_its_new_time_and_a_disposed_one_never()
    {
        var clock = new SimulationClock();
        var fired = new List<long>();
        var moved = clock.CreateTimer(_ => fired.Add(clock.NowMs), null, TimeSpan.FromMilliseconds(5), Timeout.InfiniteTimeSpan);
        var disposed = clock.CreateTimer(_ => fired.Add(-1), null, TimeSpan.FromMilliseconds(5), Timeout.InfiniteTimeSpan);
        Assert.True(moved.Change(TimeSpan.FromMilliseconds(20), Timeout.InfiniteTimeSpan));
        disposed.Dispose();
        Assert.False(disposed.Change(TimeSpan.FromMilliseconds(1), Timeout.InfiniteTimeSpan));

        clock.RunUntil(Ms(100), () => { });

        Assert.Equal([20L], fired);
    }

    [Fact]
    public void A_periodic_timer_fires_every_period_until_stopped()
    {
        var clock = new SimulationClock();
        var fired = new List<long>();
        ITimer? timer = null;
        timer = clock.CreateTimer(_ =>
        {
            fired.Add(clock.NowMs);
            if (fired.Count == 3)
            {
                timer!.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }
        }, null, TimeSpan.FromMilliseconds(10), TimeSpan.FromMilliseconds(25));

        clock.RunUntil(Ms(1000), () => { });

        Assert.Equal([10L, 35L, 60L], fired);
    }

    [Fact]
    public void Work_scheduled_in_the_past_runs_now_and_the_clock_never_goes_back()
    {
        var clock = new SimulationClock();
        clock.RunUntil(Ms(100), () => { });
        long at = -1;
        clock.Schedule(Ms(50), () => at = clock.NowMs);
        clock.RunUntil(Ms(60), () => { });
        Assert.Equal(100, at);
        Assert.Equal(100, clock.NowMs);
        Assert.False(clock.TryRunNext(long.MaxValue));
    }

    [Fact]
    public void Timers_created_from_many_threads_while_the_clock_runs_each_fire_once_in_order()
    {
        // The regional tier's flush loop creates timers from the thread pool while the replay's thread advances the
        // clock: every timer must fire exactly once, never before its due time, and the clock must never go back.
        var clock = new SimulationClock();
        const int Threads = 4, PerThread = 2_000;
        var fired = new int[Threads * PerThread];
        var firedAt = new long[Threads * PerThread];
        var due = new long[Threads * PerThread];
        long lastSeen = 0;
        bool wentBack = false;
        using var start = new Barrier(Threads + 1);
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>(); // thrown on a raw thread, one would end the test host
        var creators = Enumerable.Range(0, Threads).Select(t => new Thread(() =>
        {
            start.SignalAndWait();
            try
            {
                CreateTimers(t);
            }
            catch (Exception ex)
            {
                failures.Enqueue(ex);
            }
        })).ToArray();
        void CreateTimers(int t)
        {
            for (int i = 0; i < PerThread; i++)
            {
                int id = (t * PerThread) + i;
                var delay = TimeSpan.FromMilliseconds(1 + (id % 97));
                due[id] = clock.Now + delay.Ticks; // a lower bound: the clock may move before the timer is armed
                clock.CreateTimer(_ =>
                {
                    Interlocked.Increment(ref fired[id]);
                    firedAt[id] = clock.Now;
                }, null, delay, Timeout.InfiniteTimeSpan);
            }
        }

        foreach (var creator in creators)
        {
            creator.Start();
        }

        start.SignalAndWait();
        while (creators.Any(c => c.IsAlive))
        {
            clock.RunUntil(clock.Now + Ms(1), () =>
            {
                wentBack |= clock.Now < lastSeen;
                lastSeen = clock.Now;
            });
        }

        foreach (var creator in creators)
        {
            creator.Join();
        }

        Assert.Empty(failures);
        clock.RunUntil(clock.Now + Ms(1000), () => { });
        Assert.False(wentBack);
        Assert.All(fired, count => Assert.Equal(1, count));
        Assert.All(Enumerable.Range(0, fired.Length), id => Assert.True(firedAt[id] >= due[id], $"timer {id} fired at {firedAt[id]}, before {due[id]}"));
    }
}
