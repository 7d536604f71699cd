using ERCache.Inference;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The scheduler's one timer for its requests' deadlines (<see cref="DeadlineAlarm"/>), alone and in the cache:
/// each creator is answered at its own deadline, callers that joined wait for the row, nothing stays linked.</summary>
public sealed class DeadlineAlarmTests
{
    [Fact]
    public void Items_come_due_in_deadline_order_and_the_timer_is_armed_only_for_an_earlier_deadline()
    {
        var clock = new FakeTimeProvider();
        int fired = 0;
        var alarm = new DeadlineAlarm(clock, () => fired++);
        long now = clock.GetTimestamp(), ms = clock.TimestampFrequency / 1000;
        PendingInference late = Item(1, now + (30 * ms)), early = Item(2, now + (10 * ms)), middle = Item(3, now + (20 * ms)), gone = Item(4, now + (15 * ms));

        alarm.Add(late, now);
        Assert.Equal(now + (30 * ms), alarm.ArmedFor);
        alarm.Add(early, now);
        Assert.Equal(now + (10 * ms), alarm.ArmedFor);
        alarm.Add(middle, now);
        alarm.Add(gone, now);
        Assert.Equal(now + (10 * ms), alarm.ArmedFor); // later deadlines leave the timer alone
        alarm.Remove(gone);
        alarm.Remove(gone); // twice: nothing
        Assert.Equal(3, alarm.Count);

        clock.Advance(TimeSpan.FromMilliseconds(10) - TimeSpan.FromTicks(1));
        Assert.Equal(0, fired);
        clock.Advance(TimeSpan.FromTicks(1));
        Assert.Equal(1, fired);
        Assert.Equal([early], alarm.TakeDue(clock.GetTimestamp()));
        Assert.Equal(now + (20 * ms), alarm.ArmedFor);

        clock.Advance(TimeSpan.FromMilliseconds(20));
        Assert.Equal(2, fired);
        Assert.Equal([middle, late], alarm.TakeDue(clock.GetTimestamp()));
        Assert.Null(alarm.ArmedFor);
        Assert.Equal(0, alarm.Count);
        Assert.Null(alarm.TakeDue(clock.GetTimestamp()));
    }

    [Fact]
    public void Removal_from_the_head_the_middle_and_the_tail_keeps_the_order()
    {
        var clock = new FakeTimeProvider();
        var alarm = new DeadlineAlarm(clock, () => { });
        long now = clock.GetTimestamp();
        var items = Enumerable.Range(1, 5).Select(i => Item(i, now + i)).ToArray();
        foreach (var item in items.Reverse())
        {
            alarm.Add(item, now); // each before all the others: the walk from the tail
        }

        alarm.Remove(items[0]);
        alarm.Remove(items[2]);
        alarm.Remove(items[4]);
        alarm.Add(items[2], now);

        Assert.Equal([items[1], items[2], items[3]], alarm.TakeDue(now + 10));
        Assert.All(items, i => Assert.False(alarm.Contains(i)));
    }

    [Fact]
    public void A_timer_that_fires_before_the_deadline_is_re_armed_for_at_least_a_millisecond()
    {
        // The system's timers count whole milliseconds: re-armed for the fraction left, one would fire at once, repeatedly.
        var clock = new FakeTimeProvider();
        int fired = 0;
        var alarm = new DeadlineAlarm(clock, () => fired++);
        long now = clock.GetTimestamp(), ms = clock.TimestampFrequency / 1000;
        alarm.Add(Item(1, now + (10 * ms)), now);

        Assert.Null(alarm.TakeDue(now + (ms * 19 / 2))); // as if the timer had fired half a millisecond early
        clock.Advance(TimeSpan.FromMilliseconds(0.9));
        Assert.Equal(0, fired);
        clock.Advance(TimeSpan.FromMilliseconds(0.1));
        Assert.Equal(1, fired);
    }

    [Fact]
    public void Due_times_round_up_and_stop_at_the_longest_timer()
    {
        Assert.Equal(TimeSpan.Zero, DeadlineAlarm.DueIn(0, 1_000_000_000));
        Assert.Equal(TimeSpan.FromTicks(1), DeadlineAlarm.DueIn(1, 1_000_000_000));
        Assert.Equal(TimeSpan.FromTicks(2), DeadlineAlarm.DueIn(101, 1_000_000_000));
        Assert.Equal(TimeSpan.FromSeconds(1), DeadlineAlarm.DueIn(1_000_000_000, 1_000_000_000));
        Assert.Equal(ERCacheLimits.MaxInferenceTimeout, DeadlineAlarm.DueIn(long.MaxValue, 1));
    }

    [Fact]
    public void Disposal_unlinks_everything_and_stops_the_timer()
    {
        var clock = new FakeTimeProvider();
        int fired = 0;
        var alarm = new DeadlineAlarm(clock, () => fired++);
        long now = clock.GetTimestamp();
        var item = Item(1, now + 10);
        alarm.Add(item, now);

        alarm.Dispose();
        alarm.Add(Item(2, now + 5), now);
        clock.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal((0, 0, false), (fired, alarm.Count, alarm.Contains(item)));
        Assert.Null(alarm.ArmedFor);
    }

    [Fact]
    public async Task A_creator_is_answered_at_its_own_deadline_while_a_caller_who_joined_later_waits_for_the_row()
    {
        using var f = new CacheFixture(m => m.Inference.HardTimeout = TimeSpan.FromSeconds(5)); // timeout 50 ms
        var release = new TaskCompletionSource();
        f.Tower.Gate = release.Task;
        f.Tower.Generation = 5;
        float[] creatorBuffer = new float[4], joinedBuffer = new float[4];

        var creator = f.Cache.GetAsync(CacheFixture.Model, 9, creatorBuffer).AsTask();
        f.Clock.Advance(TimeSpan.FromMilliseconds(30));
        var joined = f.Cache.GetAsync(CacheFixture.Model, 9, joinedBuffer).AsTask(); // its deadline: 80 ms
        Assert.Equal(1, f.Tower.CallCount);
        f.Clock.Advance(TimeSpan.FromMilliseconds(20) - TimeSpan.FromTicks(1));
        Assert.False(creator.IsCompleted);
        f.Clock.Advance(TimeSpan.FromTicks(1)); // the creator's deadline
        var answered = await creator.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(joined.IsCompleted);
        release.SetResult();
        var served = await joined.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal((EmbeddingSource.Fallback, InferenceFailureCause.Timeout), (answered.Source, answered.FailureCause));
        Assert.Equal(new float[4], creatorBuffer); // nothing reaches the buffer of a caller who was answered
        Assert.Equal(EmbeddingSource.Fresh, served.Source);
        Assert.True(TestTower.BelongsTo(joinedBuffer, 9) && TestTower.GenerationOf(joinedBuffer) == 5);
        Assert.Equal(0, f.Cache.GetAlarmCount(CacheFixture.Model));
    }

    [Fact]
    public async Task A_request_leaves_the_alarm_when_its_inference_completes_is_shed_or_times_out()
    {
        using var f = new CacheFixture(m =>
        {
            m.Inference.MaxConcurrency = 1;
            m.Inference.MaxQueue = 1;
            m.Inference.HardTimeout = TimeSpan.FromSeconds(5);
        });

        await f.GetAsync(1); // completes inline
        Assert.Equal(0, f.Cache.GetAlarmCount(CacheFixture.Model));

        var release = new TaskCompletionSource();
        f.Tower.Gate = release.Task;
        var running = f.Cache.GetAsync(CacheFixture.Model, 2, new float[4]).AsTask();
        var queued = f.Cache.GetAsync(CacheFixture.Model, 3, new float[4]).AsTask();
        var refused = await f.Cache.GetAsync(CacheFixture.Model, 4, new float[4]); // the queue is full: never linked
        Assert.Equal(InferenceFailureCause.Overload, refused.FailureCause);
        Assert.Equal(2, f.Cache.GetAlarmCount(CacheFixture.Model));

        f.Clock.Advance(TimeSpan.FromMilliseconds(50)); // both deadlines: answered and unlinked by the alarm
        Assert.Equal(InferenceFailureCause.Timeout, (await running.WaitAsync(TimeSpan.FromSeconds(10))).FailureCause);
        Assert.Equal(InferenceFailureCause.Overload, (await queued.WaitAsync(TimeSpan.FromSeconds(10))).FailureCause);
        Assert.Equal(0, f.Cache.GetAlarmCount(CacheFixture.Model));

        f.Tower.Gate = null;
        release.SetResult(); // the running call ends; the queued user, past every deadline, is shed at dispatch
        await f.Cache.WhenIdleAsync(CacheFixture.Model).WaitAsync(TimeSpan.FromSeconds(10));
        var later = f.Cache.GetAsync(CacheFixture.Model, 5, new float[4]).AsTask();
        Assert.Equal(EmbeddingSource.Fresh, (await later.WaitAsync(TimeSpan.FromSeconds(10))).Source);
        Assert.Equal((0, 0), (f.Cache.GetAlarmCount(CacheFixture.Model), f.Cache.GetPendingUsers(CacheFixture.Model)));
    }

    private static PendingInference Item(long user, long deadline) => new(user, deadline, creatorRow: new float[1]);
}
