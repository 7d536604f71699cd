using ERCache.Inference;
using Polly.CircuitBreaker;

namespace ERCache.Tests;

/// <summary>Each cause from each origin: the delegate call, one row of a completed call, the queue, the caller's wait.</summary>
public sealed class FailureClassifierTests
{
    public static TheoryData<Exception?, InferenceFailureCause> Calls => new()
    {
        { null, InferenceFailureCause.None },
        { new BrokenCircuitException(), InferenceFailureCause.CircuitOpen },
        { new IsolatedCircuitException(), InferenceFailureCause.CircuitOpen },
        { new TimeoutException(), InferenceFailureCause.Timeout },
        { new InvalidOperationException(), InferenceFailureCause.Error },
        { new OperationCanceledException(), InferenceFailureCause.Error },
    };

    [Theory]
    [MemberData(nameof(Calls))]
    public void A_call_is_classified_by_how_it_ended(Exception? exception, InferenceFailureCause expected) =>
        Assert.Equal(expected, Internal.ExceptionCause.Of(exception));

    [Fact]
    public void A_row_is_classified_by_its_status_then_its_values()
    {
        var batch = new InferenceBatch("m", "v", 3, 5);
        batch.SetRow(0, [1f, 2f, 3f]);
        batch.SetRow(1, [1f, 2f]);                       // wrong length
        batch.Fail(2);                                   // reported failed by the delegate
        batch.SetRow(3, [1f, float.PositiveInfinity, 3f]); // written, not finite
        // row 4 never written: still NaN

        Assert.Equal(InferenceFailureCause.None, FailureClassifier.OfRow(batch.StatusOf(0), batch.Row(0)));
        Assert.Equal(InferenceFailureCause.InvalidVector, FailureClassifier.OfRow(batch.StatusOf(1), batch.Row(1)));
        Assert.Equal(InferenceFailureCause.Error, FailureClassifier.OfRow(batch.StatusOf(2), batch.Row(2)));
        Assert.Equal(InferenceFailureCause.InvalidVector, FailureClassifier.OfRow(batch.StatusOf(3), batch.Row(3)));
        Assert.Equal(InferenceFailureCause.InvalidVector, FailureClassifier.OfRow(batch.StatusOf(4), batch.Row(4)));
        batch.Release();
    }

    [Fact]
    public void A_failed_row_stays_an_error_even_with_finite_values()
    {
        var batch = new InferenceBatch("m", "v", 2, 1);
        batch.SetRow(0, [1f, 2f]);
        batch.Fail(0);

        Assert.Equal(InferenceFailureCause.Error, FailureClassifier.OfRow(batch.StatusOf(0), batch.Row(0)));
        batch.Release();
    }

    // Each row: "ok" written and finite, "nan" written with a NaN, "short" of the wrong length, "unwritten" (still
    // NaN), "failed" by the delegate.
    [Theory]
    [InlineData("nan", InferenceFailureCause.InvalidVector)]
    [InlineData("short", InferenceFailureCause.InvalidVector)]
    [InlineData("unwritten", InferenceFailureCause.InvalidVector)]
    [InlineData("nan short unwritten", InferenceFailureCause.InvalidVector)]
    [InlineData("failed nan failed", InferenceFailureCause.InvalidVector)]
    [InlineData("ok", InferenceFailureCause.None)]
    [InlineData("nan nan nan ok", InferenceFailureCause.None)]
    [InlineData("ok short", InferenceFailureCause.None)]
    [InlineData("failed", InferenceFailureCause.None)]
    [InlineData("failed failed", InferenceFailureCause.None)]
    public void A_call_is_unusable_only_when_no_row_is_usable_and_some_row_is_invalid(string rows, InferenceFailureCause expected)
    {
        string[] kinds = rows.Split(' ');
        var batch = new InferenceBatch("m", "v", 3, kinds.Length);
        for (int i = 0; i < kinds.Length; i++)
        {
            switch (kinds[i])
            {
                case "ok": batch.SetRow(i, [1f, 2f, 3f]); break;
                case "nan": batch.SetRow(i, [1f, float.NaN, 3f]); break;
                case "short": batch.SetRow(i, [1f, 2f]); break;
                case "failed": batch.SetRow(i, [1f, 2f, 3f]); batch.Fail(i); break;
            }
        }

        Assert.Equal(expected, FailureClassifier.OfCall(batch));
        batch.Release();
    }

    [Fact]
    public void The_queue_and_the_callers_wait_have_their_own_causes()
    {
        Assert.Equal(InferenceFailureCause.Overload, FailureClassifier.OfShed());
        Assert.Equal(InferenceFailureCause.Timeout, FailureClassifier.OfUnfinished(started: true));
        Assert.Equal(InferenceFailureCause.Overload, FailureClassifier.OfUnfinished(started: false));
    }
}
