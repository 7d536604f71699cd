using ERCache.Testing;

namespace ERCache.Tests;

/// <summary>The manual clock behaves like FakeTimeProvider for what the tests rely on.</summary>
public sealed class ManualTimeProviderTests
{
    [Fact]
    public void Time_moves_only_when_advanced()
    {
        var clock = new ManualTimeProvider(new DateTimeOffset(2026, 11, 22, 0, 0, 0, TimeSpan.Zero));
        long t0 = clock.GetTimestamp();
        clock.Advance(TimeSpan.FromMilliseconds(1500));

        Assert.Equal(new DateTimeOffset(2026, 11, 22, 0, 0, 1, 500, TimeSpan.Zero), clock.GetUtcNow());
        Assert.Equal(TimeSpan.FromMilliseconds(1500), clock.GetElapsedTime(t0));
    }

    [Fact]
    public void Time_cannot_go_backwards()
    {
        var clock = new ManualTimeProvider();
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.Advance(TimeSpan.FromTicks(-1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => clock.SetUtcNow(clock.GetUtcNow().AddTicks(-1)));
    }

    [Fact]
    public void Timers_fire_in_due_order_at_their_due_time()
    {
        var clock = new ManualTimeProvider();
        var start = clock.GetUtcNow();
        var fired = new List<(string, TimeSpan)>();
        using var late = clock.CreateTimer(_ => fired.Add(("late", clock.GetUtcNow() - start)), null, TimeSpan.FromSeconds(3), Timeout.InfiniteTimeSpan);
        using var early = clock.CreateTimer(_ => fired.Add(("early", clock.GetUtcNow() - start)), null, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);

        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal([("early", TimeSpan.FromSeconds(1))], fired);
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal([("early", TimeSpan.FromSeconds(1)), ("late", TimeSpan.FromSeconds(3))], fired);
    }

    [Fact]
    public void Periodic_timers_repeat_and_disposed_timers_stop()
    {
        var clock = new ManualTimeProvider();
        int ticks = 0;
        var timer = clock.CreateTimer(_ => ticks++, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        clock.Advance(TimeSpan.FromSeconds(3.5));
        timer.Dispose();
        clock.Advance(TimeSpan.FromSeconds(10));

        Assert.Equal(3, ticks);
        Assert.Equal(0, clock.ActiveTimers);
    }

    [Fact]
    public async Task CancellationTokenSource_and_WaitAsync_follow_the_manual_clock()
    {
        var clock = new ManualTimeProvider();
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100), clock);
        var never = new TaskCompletionSource();
        var wait = never.Task.WaitAsync(TimeSpan.FromSeconds(1), clock);

        clock.Advance(TimeSpan.FromMilliseconds(99));
        Assert.False(cts.IsCancellationRequested);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(cts.IsCancellationRequested);
        Assert.False(wait.IsCompleted);
        clock.Advance(TimeSpan.FromMilliseconds(900));
        await Assert.ThrowsAsync<TimeoutException>(() => wait);
    }
}
