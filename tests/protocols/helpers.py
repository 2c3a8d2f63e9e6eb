from loadgen.protocols.base import Decoder, StreamEvent


def feed_all(decoder: Decoder, data: bytes, *cuts: int) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    previous = 0
    for cut in (*cuts, len(data)):
        events += decoder.feed(data[previous:cut])
        previous = cut
    return events + decoder.close()
