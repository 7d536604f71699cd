using ERCache.Internal;
using ERCache.Tests.Infrastructure;

namespace ERCache.Tests;

/// <summary>The one-element arrays of a single user's miss: reused only on the thread that rented them, never shared by two
/// misses in progress.</summary>
public sealed class SingleMissBuffersTests
{
    [Fact]
    public void A_set_returned_on_the_renting_thread_is_reused_there_cleared_and_with_the_new_user()
    {
        var first = SingleMissBuffers.Rent(7);
        first.Result[0] = new EmbeddingResult(EmbeddingSource.Fresh, TimeSpan.Zero, "v1", InferenceFailureCause.None, hasVector: true);
        first.Position[0] = 5; // whatever the last miss left there
        first.Return();

        var second = SingleMissBuffers.Rent(8);

        Assert.Same(first, second);
        Assert.Equal(8, second.User[0]);
        Assert.Equal(0, second.Position[0]);
        Assert.Equal(default, second.Result[0]); // no other miss's result, nor its version's name, stays reachable
        second.Return();
    }

    [Fact]
    public void Two_misses_in_progress_on_one_thread_never_share_a_set()
    {
        SingleMissBuffers.Rent(0).Return(); // this thread has a spare
        var outer = SingleMissBuffers.Rent(1);
        var inner = SingleMissBuffers.Rent(2); // a retried miss, while the first is still running

        Assert.NotSame(outer, inner);
        Assert.Equal(1, outer.User[0]);
        Assert.Equal(2, inner.User[0]);
        inner.Return();
        outer.Return();
    }

    [Fact]
    public void A_set_returned_on_another_thread_is_left_to_the_collector_there_and_here()
    {
        var rented = SingleMissBuffers.Rent(3);
        SingleMissBuffers? takenThere = null;
        CheckedThread.Start(() =>
        {
            rented.Return(); // the miss completed on an inference thread
            takenThere = SingleMissBuffers.Rent(4);
        }).Join();

        Assert.NotSame(rented, takenThere); // the other thread did not keep it
        Assert.NotSame(rented, SingleMissBuffers.Rent(5)); // nor did this one get it back
    }
}
